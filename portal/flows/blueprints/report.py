"""What an import did, or would do: one Change per entry, errors, warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

CREATE, UPDATE, UNCHANGED, DELETE, SKIP = "create", "update", "unchanged", "delete", "skip"


@dataclass
class Change:
    """What one entry does (or would do)."""

    entry: int
    model: str
    action: str
    label: str
    details: list[str] = field(default_factory=list)  # changed fields, or why skipped
    notes: list[str] = field(default_factory=list)  # attributes kept or ignored, and why


@dataclass
class ImportReport:
    name: str = ""
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: bool = False
    flow_slugs: list[str] = field(default_factory=list)  # flows the blueprint creates or keeps
    warnings: list[str] = field(default_factory=list)  # applies, but the admin should know

    @property
    def ok(self) -> bool:
        return not self.errors

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def counts(self) -> dict[str, int]:
        return {a: len(self.of(a)) for a in (CREATE, UPDATE, DELETE, UNCHANGED, SKIP)}

    def summary(self) -> str:
        """Counts in words: "2 to create" before applying, "2 created" once applied."""
        counts = self.counts()
        verbs = ("created", "updated", "deleted") if self.applied else (
            "to create", "to update", "to delete")
        return (f"{counts[CREATE]} {verbs[0]}, {counts[UPDATE]} {verbs[1]}, {counts[DELETE]} {verbs[2]}, "
                f"{counts[UNCHANGED]} unchanged, {counts[SKIP]} skipped")

