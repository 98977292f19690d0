"""``ganprior models``: the registry as a table (or JSON), with what is cached on this machine. Works offline."""

from __future__ import annotations

import json

import click

from ganprior.loading.registry import REGISTRY, ModelSpec, cache_dir, is_cached, local_files


def model_row(spec: ModelSpec) -> dict:
    cached = is_cached(spec)
    return {
        "name": spec.name,
        "family": spec.family,
        "resolution": spec.resolution,
        "classes": spec.classes,
        "dataset": spec.dataset,
        "cached": cached,
        "path": str(local_files(spec)[0]),
        "hash": "verified" if spec.verified else "unverified",
        "download": "embedded" if spec.embedded else ("manual" if spec.manual else "auto"),
        "urls": [f.url for f in spec.files if f.url],
        "page": spec.page,
        "notes": spec.notes,
    }


def _table(rows: list[dict]) -> str:
    columns = ("name", "family", "res", "classes", "cached", "hash", "download", "path")
    cells = [[r["name"], r["family"], str(r["resolution"]), "?" if r["classes"] is None else str(r["classes"]),
              "yes" if r["cached"] else "no", r["hash"], r["download"], r["path"]] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--family", type=click.Choice(sorted({s.family for s in REGISTRY.values()})), help="Only this family.")
@click.option("--cached", "only_cached", is_flag=True, help="Only models whose files are on this machine.")
@click.option("--verify", is_flag=True, help="Re-hash every cached file against the cache manifest and check "
              "the embedded model's tensor digests; exit status 1 if anything changed.")
def command(as_json: bool, family: str | None, only_cached: bool, verify: bool) -> None:
    """List known models: family, resolution, classes, whether cached (and where), hash status."""
    if verify:
        _verify(as_json)
        return
    rows = [model_row(s) for s in REGISTRY.values() if family in (None, s.family)]
    if only_cached:
        rows = [r for r in rows if r["cached"]]
    if as_json:
        click.echo(json.dumps({"cache_dir": str(cache_dir()), "models": rows}, indent=2))
        return
    click.echo(_table(rows))
    click.echo(f"\ncache: {cache_dir()} (set GANPRIOR_CACHE to move it).  hash 'unverified': no published "
               "SHA-256 to check against; what ganprior downloads or converts is hashed into the cache manifest "
               "and re-checked on every load (`ganprior models --verify` re-hashes the cache).  "
               "download 'manual': put the file at the path shown.")


def _verify(as_json: bool) -> None:
    from ganprior.loading.errors import CheckpointError
    from ganprior.loading.integrity import verify_all
    from ganprior.loading.native_check import verify_digest
    from ganprior.loading.registry import embedded_dir

    rows = verify_all(cache_dir())
    for path in sorted(embedded_dir().glob("*.safetensors")):
        try:
            status = "ok" if verify_digest(path) else "ok (no digest)"
        except CheckpointError as exc:
            status = f"changed: {exc}"
        rows.append({"path": str(path), "status": status, "origin": "embedded"})
    if as_json:
        click.echo(json.dumps({"cache_dir": str(cache_dir()), "files": rows}, indent=2))
    else:
        for row in rows:
            click.echo(f"{row['status'].split(':')[0]:<15} {row['path']}  ({row['origin']})")
        click.echo(f"{len(rows)} file(s) checked; cache manifest: {cache_dir() / 'manifest.json'}")
    if any(not r["status"].startswith("ok") for r in rows):
        raise click.ClickException("some files do not match their recorded SHA-256 (see above)")
