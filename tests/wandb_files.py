"""A reader of W&B's offline run files (``offline-run-*/run-ID.wandb``), for the tests: wandb >= 0.20 reads them in
its Go core only (``wandb sync``), so this follows the file format that core writes (LevelDB's log format: 32 KiB
blocks of CRC-framed chunks, after a 7-byte ``:W&B`` header) and decodes each record with wandb's own protobuf
``Record``."""
import glob
import json
import os
import struct

BLOCK, HEADER = 32 * 1024, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str):
    """The protobuf ``Record`` messages of one ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2
    with open(path, "rb") as f:
        data = f.read()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1 and version == 0, (ident, magic, version)
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:                       # the block's tail is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            yield record
            pending = b""
        elif kind in (FIRST, MIDDLE):
            pending += chunk
        else:                                   # zero padding to the block's end
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0


def run_files(folder: str, run_id: str) -> list[str]:
    """Every offline file of run ``run_id`` under ``folder/wandb`` (a resumed run has one per start), oldest first."""
    return sorted(glob.glob(os.path.join(folder, "wandb", f"offline-run-*-{run_id}", f"run-{run_id}.wandb")))


def history(folder: str, run_id: str) -> list[tuple[int, dict]]:
    """``[(step, {key: value})]`` of every history row that run ``run_id`` logged, across its resumes."""
    rows = []
    for path in run_files(folder, run_id):
        for record in records(path):
            if record.WhichOneof("record_type") == "history":
                items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item}
                rows.append((int(record.history.step.num), {k: v for k, v in items.items() if not k.startswith("_")}))
    return rows


def config(folder: str, run_id: str) -> dict:
    """The run's config as its first file records it (``{key: value}``; W&B keeps its own under ``_wandb``)."""
    out = {}
    for record in records(run_files(folder, run_id)[0]):
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            update = record.run.config.update if kind == "run" else record.config.update
            out.update({item.key: json.loads(item.value_json) for item in update})
    return out
