"""Files that follow the work: a content-addressed store per site, manifests, transfers.

- `chunking`: files cut into content-defined chunks (FastCDC, ~1 MiB average) and hashed
  (BLAKE3) in one streaming read; a small edit changes a few chunks, never the whole file.
- `manifest`: what a set of files is (relative path, size, hash, chunks), as canonical JSON.
- `store`: a site's chunk store on disk (chunks by hash, manifests by name); every chunk is
  verified before it is kept, written to a temporary name and renamed.
- `service`: the file service's HTTP API (token auth): which chunks are missing, put and get
  chunks in batches, manifests, and a pull from a peer file service.
- `peer`: the client of a file service; `transfer`: upload a folder's files to a service, or
  download a manifest's files into a folder from one (resumable, verified, bounded memory,
  parallel, capped bandwidth).

Data moves between file services (and the machines next to them) directly; the controller only
says what should move where.
"""
