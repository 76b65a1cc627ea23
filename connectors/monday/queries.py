"""The GraphQL documents the monday.com connector sends (API-Version 2024-10). Every query asks for the complexity
budget so the client can pace itself (`connectors.monday.client`)."""
from __future__ import annotations

API_VERSION = "2024-10"
COMPLEXITY = "complexity { before after query reset_in_x_seconds }"

ITEM_FIELDS = """id name state url created_at updated_at creator_id group { id title } parent_item { id }
      column_values { id type text value
        ... on BoardRelationValue { display_value linked_item_ids }
        ... on MirrorValue { display_value } }"""

ME = "query { me { id name email account { id name slug } } }"

USERS = f"""query ($limit: Int!, $page: Int!) {{ {COMPLEXITY}
  users(limit: $limit, page: $page) {{ id name email enabled }} }}"""

BOARDS = f"""query ($ids: [ID!], $limit: Int!, $page: Int!, $state: State) {{ {COMPLEXITY}
  boards(ids: $ids, limit: $limit, page: $page, state: $state) {{
    id name state type columns {{ id title type settings_str }} }} }}"""

ITEMS_PAGE = f"""query ($board: [ID!], $limit: Int!, $qp: ItemsQuery) {{ {COMPLEXITY}
  boards(ids: $board) {{ id items_page(limit: $limit, query_params: $qp) {{ cursor items {{ {ITEM_FIELDS} }} }} }} }}"""

NEXT_ITEMS_PAGE = f"""query ($cursor: String!, $limit: Int!) {{ {COMPLEXITY}
  next_items_page(cursor: $cursor, limit: $limit) {{ cursor items {{ {ITEM_FIELDS} }} }} }}"""

ACTIVITY = f"""query ($board: [ID!], $from: ISO8601DateTime, $limit: Int!, $page: Int!) {{ {COMPLEXITY}
  boards(ids: $board) {{ id activity_logs(from: $from, limit: $limit, page: $page) {{
    id event entity data created_at }} }} }}"""

ITEMS_BY_ID = f"""query ($ids: [ID!], $limit: Int!) {{ {COMPLEXITY}
  items(ids: $ids, limit: $limit, exclude_nonactive: false) {{ {ITEM_FIELDS} board {{ id }} }} }}"""
