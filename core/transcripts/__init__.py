"""Call transcripts, fetched on demand from the call recorder and cached on the conversation (see `fetch`),
searched for what an account said about a topic (see `search`), in one text form for every source (`text`)."""
from __future__ import annotations

from core.transcripts.fetch import (DEFAULT_MAX_AGE_DAYS, Transcript, find_conversation, get_transcript,
                                    transcript_sources)
from core.transcripts.search import Excerpt, Searched, TranscriptSearch, search_transcripts, topic_terms
from core.transcripts.text import Line, render

__all__ = ["DEFAULT_MAX_AGE_DAYS", "Excerpt", "Line", "Searched", "Transcript", "TranscriptSearch",
           "find_conversation", "get_transcript", "render", "search_transcripts", "topic_terms",
           "transcript_sources"]
