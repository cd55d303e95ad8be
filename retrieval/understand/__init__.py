"""Query understanding: the words of a search that are dates, places or cameras become filters.

``understand("beach in Lisbon last summer", now)`` → text "beach", a date filter (21 Jun–22 Sep
of last summer) and a place filter (Lisbon, Portugal), each with the words it came from, so that
no word is ever lost: every word is in the remaining text or in exactly one filter.
"""

from retrieval.understand.model import Filter, Understood
from retrieval.understand.parse import understand

__all__ = ["Filter", "Understood", "understand"]
