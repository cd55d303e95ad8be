"""How many images carry each label of a label set, counted by the database (a page showing a
label table or a label filter asks on every render: reading every label row into Python to
count them costs O(labels) there; here it is one grouped query)."""

from __future__ import annotations

from sqlalchemy import func, select

from encoders.errors import check_text
from indexer.store.metadata import MetadataStore
from indexer.store.schema import LabelRow


def label_counts(store: MetadataStore, label_set: str, best_only: bool = True) -> dict[str, int]:
    """``{label: images}`` of ``label_set``, most images first (then by label). ``best_only``:
    count an image under its best-scoring label only (ties: the first label by name), as a
    label table shows; else under every label it has (the labels a filter can offer)."""
    label_set = check_text(label_set, "a label set name")
    if best_only:
        rank = func.row_number().over(
            partition_by=LabelRow.file_id, order_by=(LabelRow.score.desc(), LabelRow.label)
        )
        ranked = (
            select(LabelRow.label, rank.label("rank"))
            .where(LabelRow.label_set == label_set)
            .subquery()
        )
        label, where = ranked.c.label, ranked.c.rank == 1
    else:
        label, where = LabelRow.label, LabelRow.label_set == label_set
    images = func.count().label("images")
    query = select(label, images).where(where).group_by(label).order_by(images.desc(), label)
    with store.session() as session:
        return {str(name): int(count) for name, count in session.execute(query)}
