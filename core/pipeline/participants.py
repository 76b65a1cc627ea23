"""Who is on a call, as every step reads it: one spelling of the rule for the participants' JSON
(`participants` [{name, email, affiliation}] of conversations and activities).

- A participant's e-mail compares by `email_key`: lower-cased, spaces around it dropped. A source that writes
  " Amy@Acme.io" means amy@acme.io; the linker matching it on a full run while an incremental run's lookup
  (participant_emails, kept by `pandora_participant_emails`, migration 0028) or the engagement score did not
  would make the two runs disagree. Contacts' own e-mails compare lower-cased (the contacts_email index).
- Marked internal: an `affiliation` that is "internal" in any case, spaces around it dropped (Gong writes
  "Internal"), as the internal filter reads it.
"""
from __future__ import annotations


def email_key(expr: str) -> str:
    """SQL: the comparable form of the e-mail `expr` (a text expression) of a participant."""
    return f"lower(btrim({expr}))"


def affiliation(expr: str) -> str:
    """SQL: the comparable form of the affiliation `expr` (a text expression): "internal", "external", ..."""
    return f"lower(btrim({expr}))"


def marked_internal(expr: str) -> str:
    """SQL condition: the affiliation `expr` (a text expression) says internal. NULL when there is none."""
    return f"{affiliation(expr)} = 'internal'"
