"""What Drive v3 requests look like: base URL, paths, the fields we ask for, and the MIME types that matter."""
from __future__ import annotations

API_BASE = "https://www.googleapis.com"
FILES = "/drive/v3/files"
CHANGES = "/drive/v3/changes"
START_TOKEN = "/drive/v3/changes/startPageToken"
DRIVES = "/drive/v3/drives"
ABOUT = "/drive/v3/about"
MAX_PAGE = 1000  # files.list and changes.list refuse more

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
GOOGLE_NATIVE = "application/vnd.google-apps."

FILE_FIELDS = ("id,name,mimeType,size,md5Checksum,modifiedTime,createdTime,owners(displayName,emailAddress),"
               "webViewLink,parents,trashed,driveId")
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"
CHANGE_FIELDS = f"nextPageToken,newStartPageToken,changes(changeType,time,removed,fileId,driveId,file({FILE_FIELDS}))"
FOLDER_FIELDS = "nextPageToken,files(id,name,parents,driveId,createdTime)"
ALL_DRIVES = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
LIVE_FILES = f"trashed = false and mimeType != '{FOLDER}'"
LIVE_FOLDERS = f"mimeType = '{FOLDER}' and trashed = false"
