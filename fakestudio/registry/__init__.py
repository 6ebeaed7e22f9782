"""The soft-binding registry: durable Content Credentials (docs/registry.md).

A publisher stores each signed output's C2PA manifest store under the soft bindings its own
manifest declares (fakestudio's watermark payload); anyone holding a stripped copy asks the
registry by binding (`/matches/byBinding`) or by content (`/matches/byContent`) and fetches
the signed manifest store (`/manifests/{manifestId}`), as in the C2PA Soft Binding
Resolution API.

Modules: `storage` (SQLite and PostgreSQL behind one interface), `jumbf` (the manifest store
out of a signed file), `publication` (what is checked before anything is stored), `tokens`,
`app` (the Starlette application). No torch anywhere in this package.
"""
