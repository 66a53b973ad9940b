"""A PAS request bundle indexed for reference resolution (Bundle.entry.fullUrl and Type/id)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mappings.pas.issues import Issue


@dataclass(frozen=True, slots=True)
class Located:
    """A resource found in the bundle and the path to it (``Bundle.entry[3].resource``)."""

    resource: dict[str, Any]
    path: str


@dataclass
class BundleIndex:
    """Resolves references inside one bundle the way FHIR's bundle rules do: an absolute reference
    matches an entry's ``fullUrl``; a relative ``Type/id`` matches the entry whose ``fullUrl`` ends with
    it or whose resource has that type and id. Unresolved references become issues, never guesses."""

    by_url: dict[str, Located] = field(default_factory=dict)
    by_type_id: dict[str, Located] = field(default_factory=dict)
    entries: list[Located] = field(default_factory=list)

    @classmethod
    def of(cls, bundle: dict[str, Any]) -> BundleIndex:
        index = cls()
        for i, entry in enumerate(bundle.get("entry") or ()):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            located = Located(resource, f"Bundle.entry[{i}].resource")
            index.entries.append(located)
            url = entry.get("fullUrl")
            if isinstance(url, str):
                index.by_url[url] = located
            rid = resource.get("id")
            if isinstance(rid, str):
                index.by_type_id.setdefault(f"{resource.get('resourceType')}/{rid}", located)
        return index

    def first_of_type(self, resource_type: str) -> Located | None:
        return next((e for e in self.entries if e.resource.get("resourceType") == resource_type), None)

    def resolve(
        self, reference: Any, path: str, issues: list[Issue], *, required: bool = True
    ) -> Located | None:
        """The resource ``reference`` (a Reference element at ``path``) points to, or None with an issue."""
        target = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(target, str) or not target:
            if required:
                issues.append(Issue(path, "required", "a reference to a resource in this bundle is required"))
            return None
        found = self.by_url.get(target)
        if found is None:
            tail = "/".join(target.rsplit("/", 2)[-2:])
            found = self.by_type_id.get(tail) or next(
                (v for k, v in self.by_url.items() if k.endswith("/" + tail)), None
            )
        if found is None:
            issues.append(
                Issue(f"{path}.reference", "not-found", "reference does not resolve inside the bundle")
            )
        return found
