"""Specs for the import's fast paths: each shortcut gives exactly what the general path gives.

- per-column parsers (parsers.column_parser) read every cell as values.py does, errors included;
- apply writes the same rows, counts and errors whether it loads the pages preview kept or parses again;
- upsert_rows hands back what it wrote (ids, digests), so recording changes never reads the table back.
"""
from __future__ import annotations

import gc
import json
import os
import random
import signal
from decimal import Decimal
from pathlib import Path

import pytest

from bot.cli import main
from connectors.file_import import batch as batches
from connectors.file_import import values as V
from connectors.file_import.parsers import BulkGcPause, ForkedMap, ParsedPages, column_parser
from connectors.file_import.transform import Transformer
from core.db.upsert import prepare_rows, table_columns, upsert_rows

# --- parsers: the shortcut and the general reader agree ---------------------------------------------------------

GENERAL = {
    "amount": lambda text, order: (lambda a: None if a[0] is None else a)(V.parse_amount(text)),
    "date": V.parse_date, "datetime": V.parse_datetime,
    "percent": lambda text, order: V.parse_percent(text), "bool": lambda text, order: V.parse_bool(text),
    "int": lambda text, order: V.parse_int(text), "email": lambda text, order: V.parse_email(text),
    "domain": lambda text, order: V.parse_domain(text),
}
SHAPES = {
    "amount": ["$12,500.00", "$0.50", "$0.5", "$00.50", "$012,500.00", "$1,234,567.89", "$1,23.00", "$12500.00",
               "$1,000", "$1,000.", "$.50", "12500", "12500.5", "12500.00", "0012", "1.234", "1,234", "1.5", "0.125",
               "$-5.00", "-$5.00", "($5.00)", "US$5.00", "5.00 USD", "$5.000", "$1,234.5", "١٢٣", "$١٢.٠٠",
               "1234567890123456", "12.5k", "€1.234,56", "TBD"],
    "date": ["3/15/2026", "03/15/2026", "15/3/2026", "13/13/2026", "2/30/2026", "0/1/2026", "1/0/2026", "2026-03-15",
             "2026-02-30", "2026-3-15", "2026-03-15T10:22:00Z", "3/15/26", "15.03.2026", "Mar 15, 2026",
             "3/15/2026 10:22", "٣/١٥/٢٠٢٦", "20260315", "46096", "TBD"],
    "datetime": ["6/11/2024 17:49", "6/11/2024 7:05:09", "6/11/2024 24:00", "6/11/2024 23:60", "6/11/2024 10:22 PM",
                 "6/11/2024  17:49", "6/11/2024T17:49", "31/12/2024 23:59", "2/30/2024 10:00", "3/15/2026",
                 "2026-03-15", "2026-03-15 10:22", "2026-03-15T10:22:33+02:00", "1773570153000", "TBD"],
    "percent": ["40%", "0%", "100%", "101%", "040%", "000%", "45.5%", "0.45", "45", "-5%", "high", "١٠%"],
    "bool": ["yes", "No", "TRUE", "x", "maybe", "1", "0"],
    "int": ["1,200", "51-200", "10,001+", "1.2k", "many"],
    "email": ["jane@acme.io", "Jane <JANE@ACME.IO>", "jane"],
    "domain": ["https://www.Acme.io/about", "acme", "jane@acme.io"],
}


def _fuzz(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "0123456789$,./-: %AMPTZ"
    texts = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16))).strip() for _ in range(n)}
    for _ in range(n):  # near-misses of the shapes the shortcuts take
        m, d, y, h, mi = (rng.randint(0, 32), rng.randint(0, 32), rng.choice([999, 1969, 2026, 9999]),
                          rng.randint(0, 25), rng.randint(0, 61))
        texts |= {f"{m}/{d}/{y}", f"{m}/{d}/{y} {h}:{mi:02d}", f"{m}/{d}/{y} {h}:{mi:02d}:{rng.randint(0, 61):02d}",
                  f"{y}-{m:02d}-{d:02d}", f"{rng.randint(0, 150)}%", f"${rng.randint(0, 10**7):,}.{rng.randint(0, 99):02d}",
                  f"{rng.randint(0, 10**6)}.{rng.randint(0, 999)}"}
    return sorted(t for t in texts if t)


def _outcome(parse, text):
    try:
        value = parse(text)
    except ValueError as exc:
        return "error", str(exc)
    return "value", repr(value)  # repr: Decimal('12.50') is not Decimal('12.5'), an aware datetime not a naive one


@pytest.mark.parametrize("kind,order", [("amount", "mdy"), ("date", "mdy"), ("date", "dmy"), ("date", "ymd"),
                                        ("datetime", "mdy"), ("datetime", "dmy"), ("percent", "mdy"),
                                        ("bool", "mdy"), ("int", "mdy"), ("email", "mdy"), ("domain", "mdy")])
def test_a_column_parser_reads_every_cell_as_values_does(kind, order):
    parse = column_parser(kind, order)
    for text in SHAPES[kind] + _fuzz(1500, seed=sum(map(ord, kind + order))):
        expected = _outcome(lambda t: GENERAL[kind](t, order), text)
        assert _outcome(parse, text) == expected, text
        assert _outcome(parse, text) == expected, text  # the memoised answer is the same answer


def test_text_columns_have_no_parser():
    assert column_parser("text") is None and column_parser("stage") is None and column_parser("id") is None


def test_a_memo_never_keeps_an_error_and_stays_bounded(monkeypatch):
    from connectors.file_import import parsers

    monkeypatch.setattr(parsers, "MEMO_SIZE", 3)
    parse = column_parser("date", "mdy")
    for _ in range(2):
        with pytest.raises(ValueError, match="is not a date"):
            parse("TBD")
    assert [parse(f"3/{d}/2026").day for d in range(1, 9)] == list(range(1, 9))


def test_native_excel_values_take_the_general_reader():
    from datetime import date, datetime

    assert column_parser("amount")(8000.5) == (Decimal("8000.5"), None)
    assert column_parser("date")(datetime(2026, 3, 15, 9, 0)) == date(2026, 3, 15)
    assert column_parser("percent")(0.45) == Decimal("45")


# --- the transformer ----------------------------------------------------------------------------------------------

HEADERS = ["Record ID", "Deal Name", "Amount", "Deal Stage", "Close Date", "Probability", "Region"]
MAPPING = {"Record ID": "source_id", "Deal Name": "name", "Amount": "amount", "Deal Stage": "stage",
           "Close Date": "close_date", "Probability": "probability", "Region": None}


def test_a_row_names_its_first_unreadable_column():
    t = Transformer.build("deals", HEADERS, MAPPING, [])
    err = t.row(7, ["1", "Acme", "lots", "Closed Won", "TBD", "40%", "EMEA"])
    assert (err.row, err.column, err.message) == (
        7, "Amount", "'lots' is not an amount (expected e.g. 12500, $12,500.00 or 1.234,56 €)")


def test_remembered_stages_still_count_every_row_and_follow_the_probability():
    t = Transformer.build("deals", HEADERS, MAPPING, [])
    rows = [t.row(n, [str(n), f"Deal {n}", "$1,000.00", "Negotiating Terms", "3/15/2026", p, None])
            for n, p in enumerate(["90%", "90%", None, "90%"])]
    assert [r["stage_normalized"] for r in rows] == ["negotiation"] * 4
    assert [r["forecast_category"] for r in rows] == ["commit", "commit", "best_case", "commit"]
    assert t.stage_guesses["Negotiating Terms"].rows == 4


def test_a_second_column_for_the_same_field_never_overwrites_the_first():
    t = Transformer.build("deals", ["Deal Name", "Amount", "Value"], {"Deal Name": "name", "Amount": "amount",
                                                                      "Value": "amount"}, [])
    row = t.row(2, ["Acme", "100", "$250.00"])
    assert (row["amount"], row["currency"]) == (Decimal("100"), "USD")  # the second column still names a currency
    assert t.row(3, ["Acme", None, "$250.00"])["amount"] == Decimal("250.00")


# --- parsed pages: apply reads them, or parses again, with the same outcome ----------------------------------------

DEALS = ("Record ID,Deal Name,Associated Company,Amount,Deal Stage,Close Date,Create Date,Probability,Region\n"
         + "".join(f"{i},Deal {i % 7},Co {i % 5},\"${1000 + i * 37:,}.50\",{stage},{i % 12 + 1}/{i % 27 + 1}/2026,"
                   f"{i % 12 + 1}/1/2025 {i % 24}:{i % 60:02d},{i * 7 % 101}%,{'EMEA' if i % 3 else ''}\n"
                   for i, stage in zip(range(1, 61), ["Appointment Scheduled", "Closed Won", "Stalled", "Contract Sent"] * 15))
         + "61,Bad Amount,Co,lots,Closed Lost,1/1/2026,,10%,\n62,Bad Date,Co,$5.00,Closed Lost,TBD,,10%,\n")
NO_IDS = ("Deal Name,Account,Amount,Stage\n" + "".join(f"Deal {i % 4},Acme,{i},Qualified To Buy\n" for i in range(9)))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def snapshot(db, workspace, batch_id) -> dict:
    """What an apply left behind, without ids and timestamps."""
    skip = {"id", "workspace_id", "created_at", "updated_at"}
    with db.connection() as conn:
        deals = conn.execute("SELECT * FROM deals WHERE workspace_id = %s ORDER BY source_id", (workspace["id"],)).fetchall()
        ids = {d["id"]: d for d in deals}
        changes = sorted(({"source_id": ids[c["row_id"]]["source_id"], "action": c["action"],
                           "no_prior": c["prior"] is None, "hash_matches": c["written_hash"] == ids[c["row_id"]]["row_hash"]}
                          for c in batches.batch_rows(conn, workspace["id"], batch_id, "deals")),
                         key=lambda c: c["source_id"])
        stages = conn.execute("SELECT raw_stage, stage_normalized, origin, confidence FROM stage_mappings"
                              " WHERE workspace_id = %s ORDER BY 1", (workspace["id"],)).fetchall()
    return {"deals": [{k: v for k, v in r.items() if k not in skip} for r in deals], "changes": changes, "stages": stages}


def kept_pages(settings, batch_id) -> list[Path]:
    folder = settings.pandora_home / "imports" / batch_id
    return [folder / name for name in ParsedPages.FILES if (folder / name).exists()]


@pytest.mark.parametrize("text", [DEALS, NO_IDS], ids=["record-ids-and-errors", "natural-keys"])
def test_apply_gives_the_same_result_from_kept_pages_as_from_a_fresh_parse(db, settings, workspace, tmp_path, text):
    from core.workspaces import create_workspace

    path = write(tmp_path, "deals.csv", text)
    with db.connection() as conn:
        other = create_workspace(conn, "Second")
    outcomes = []
    for ws, keep in ((workspace, True), (other, False)):
        preview = batches.preview(db, settings, ws["id"], path)
        assert len(kept_pages(settings, preview["batch_id"])) == 2
        if not keep:
            for f in kept_pages(settings, preview["batch_id"]):
                f.unlink()
        applied = batches.apply(db, settings, ws["id"], preview["batch_id"])
        result = {k: applied[k] for k in ("rows", "inserted", "updated", "unchanged", "skipped", "errors", "warnings")}
        outcomes.append((result, snapshot(db, ws, preview["batch_id"])))
        assert kept_pages(settings, preview["batch_id"]) == []  # applied: the pages are gone
    for key in ("deals", "changes", "stages"):
        for a, b in zip(outcomes[0][1][key], outcomes[1][1][key]):
            assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert outcomes[0] == outcomes[1]
    result, state = outcomes[0]
    assert result["inserted"] == len(state["deals"]) == len(state["changes"])
    assert all(c["action"] == "inserted" and c["no_prior"] and c["hash_matches"] for c in state["changes"])


@pytest.mark.parametrize("text", [DEALS, NO_IDS], ids=["record-ids-and-errors", "natural-keys"])
def test_pages_parsed_apart_give_what_one_pass_gives(db, settings, workspace, tmp_path, monkeypatch, text):
    """Workers parse pages each as if it were the first; merged in order, the counts, errors, stage guesses (with
    their row counts) and the ids of rows sharing a natural key across pages are those of one page for the file."""
    from core.workspaces import create_workspace

    path = write(tmp_path, "deals.csv", text)
    with db.connection() as conn:
        other = create_workspace(conn, "One page")
    outcomes = []
    for ws, chunk in ((workspace, 2), (other, 10_000)):
        monkeypatch.setattr(batches, "CHUNK", chunk)
        preview = batches.preview(db, settings, ws["id"], path)
        applied = batches.apply(db, settings, ws["id"], preview["batch_id"])
        outcomes.append(({k: preview[k] for k in ("rows", "skipped", "errors", "warnings", "sample_rows")},
                         {k: applied[k] for k in ("inserted", "skipped", "errors")},
                         snapshot(db, ws, preview["batch_id"])["deals"], snapshot(db, ws, preview["batch_id"])["stages"]))
    assert outcomes[0] == outcomes[1]
    deals = outcomes[0][2]
    assert len({d["source_id"] for d in deals}) == len(deals) == outcomes[0][1]["inserted"]


def test_pages_repeating_natural_keys_are_parsed_again_in_order_and_not_kept(db, settings, workspace, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr(batches, "CHUNK", 3)  # "Deal 0" is on pages 1, 2 and 3
    preview = batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", NO_IDS))
    assert preview["rows"] == 9 and kept_pages(settings, preview["batch_id"]) == []


def test_apply_reads_the_kept_pages_instead_of_parsing(db, settings, workspace, tmp_path, monkeypatch):
    preview = batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", DEALS))

    def no_parsing(*args, **kwargs):
        raise AssertionError("apply parsed the file again")

    monkeypatch.setattr(Transformer, "row", no_parsing)
    applied = batches.apply(db, settings, workspace["id"], preview["batch_id"])
    assert (applied["inserted"], applied["skipped"]) == (60, 2)
    assert [e["column"] for e in applied["errors"]] == ["Amount", "Close Date"]


@pytest.fixture
def cli(db_url, settings, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PANDORA_SECRET_KEY", "k")
    monkeypatch.setenv("PANDORA_HOME", str(settings.pandora_home))

    def run(*argv):
        code = main(list(argv))
        return code, json.loads(capsys.readouterr().out)

    return run


def test_a_stage_mapping_set_after_preview_makes_apply_parse_again(db, settings, workspace, tmp_path, cli):
    path = write(tmp_path, "deals.csv", DEALS)
    preview = batches.preview(db, settings, workspace["id"], path)
    code, _ = cli("stages", "set", "Stalled", "closed_lost", "--workspace", str(workspace["id"]), "--json")
    assert code == 0
    batches.apply(db, settings, workspace["id"], preview["batch_id"])
    stalled = [d for d in snapshot(db, workspace, preview["batch_id"])["deals"] if d["stage"] == "Stalled"]
    assert stalled and {d["stage_normalized"] for d in stalled} == {"closed_lost"}


def count_parsed_rows(tmp_path, monkeypatch):
    """Count the rows Transformer.row parses from now on, in this process or in apply's forked page worker
    (which cannot append to a list of ours: it counts in a file)."""
    tally = tmp_path / "parsed-rows"
    tally.write_text("")
    real_row = Transformer.row

    def counting(self, number, cells):
        with tally.open("a") as f:
            f.write(".")
        return real_row(self, number, cells)

    monkeypatch.setattr(Transformer, "row", counting)
    return lambda: len(tally.read_text())


@pytest.mark.parametrize("damage", ["truncated", "foreign key file"])
def test_damaged_pages_are_not_trusted(db, settings, workspace, tmp_path, monkeypatch, damage):
    path = write(tmp_path, "deals.csv", DEALS)
    preview = batches.preview(db, settings, workspace["id"], path)
    data, key = (settings.pandora_home / "imports" / preview["batch_id"] / name for name in ParsedPages.FILES)
    if damage == "truncated":
        data.write_bytes(data.read_bytes()[:-10])
    else:
        key.write_bytes(b"not a key")
    parsed = count_parsed_rows(tmp_path, monkeypatch)
    applied = batches.apply(db, settings, workspace["id"], preview["batch_id"])
    assert (applied["inserted"], applied["skipped"]) == (60, 2) and parsed() == 62


def test_a_page_altered_since_preview_is_parsed_again_from_there(db, settings, workspace, tmp_path, monkeypatch):
    from core.workspaces import create_workspace

    monkeypatch.setattr(batches, "CHUNK", 10)  # 7 pages
    path = write(tmp_path, "deals.csv", DEALS)
    with db.connection() as conn:
        other = create_workspace(conn, "Fresh parse")
    fresh = batches.preview(db, settings, other["id"], path)
    for f in kept_pages(settings, fresh["batch_id"]):
        f.unlink()
    batches.apply(db, settings, other["id"], fresh["batch_id"])
    preview = batches.preview(db, settings, workspace["id"], path)
    data = settings.pandora_home / "imports" / preview["batch_id"] / ParsedPages.FILES[0]
    blob = bytearray(data.read_bytes())
    at = blob.rfind(b"Deal 3")  # in the last page; same length, so it still loads and the size still matches
    blob[at:at + 6] = b"Deal X"
    data.write_bytes(bytes(blob))
    applied = batches.apply(db, settings, workspace["id"], preview["batch_id"])
    assert (applied["inserted"], applied["skipped"]) == (60, 2)
    deals = snapshot(db, workspace, preview["batch_id"])["deals"]
    assert deals == snapshot(db, other, fresh["batch_id"])["deals"]
    assert not any("Deal X" in json.dumps(d, default=str) for d in deals)


def test_pages_kept_by_another_version_of_the_parsing_code_are_parsed_again(db, settings, workspace, tmp_path,
                                                                          monkeypatch):
    from connectors.file_import import parsers

    preview = batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", DEALS))
    monkeypatch.setattr(parsers, "_code_digest", lambda: "another release")
    parsed = count_parsed_rows(tmp_path, monkeypatch)
    assert batches.apply(db, settings, workspace["id"], preview["batch_id"])["inserted"] == 60 and parsed() == 62


def test_a_page_that_cannot_be_kept_only_means_apply_parses_again(db, settings, workspace, tmp_path, monkeypatch):
    from connectors.file_import import parsers

    # the workers write their part files where no folder is (as a full disk would fail them)
    monkeypatch.setattr(parsers.ParsedPages, "_part", lambda self, number: tmp_path / "gone" / f"part-{number}")
    preview = batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", DEALS))
    assert (preview["rows"], preview["skipped"]) == (62, 2) and kept_pages(settings, preview["batch_id"]) == []
    monkeypatch.undo()
    parsed = count_parsed_rows(tmp_path, monkeypatch)
    assert batches.apply(db, settings, workspace["id"], preview["batch_id"])["inserted"] == 60 and parsed() == 62


def test_an_upload_named_like_the_pages_is_stored_and_applied_intact(db, settings, workspace, tmp_path):
    path = write(tmp_path, "deals.csv", DEALS)
    preview = batches.preview(db, settings, workspace["id"], path, filename=ParsedPages.FILES[0])
    stored = settings.pandora_home / "imports" / preview["batch_id"] / ParsedPages.FILES[0]
    assert stored.read_bytes() == path.read_bytes()
    assert batches.apply(db, settings, workspace["id"], preview["batch_id"])["inserted"] == 60
    assert stored.read_bytes() == path.read_bytes()


def test_a_failed_preview_leaves_no_folder_behind(db, settings, workspace, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(batches.shutil, "copyfile", boom)
    with pytest.raises(RuntimeError):
        batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", DEALS))
    assert not any((settings.pandora_home / "imports").iterdir())
    assert batches.list_batches(db, workspace["id"]) == []


def test_a_row_inserted_then_updated_by_one_batch_stays_inserted_with_the_last_digest(
        db, settings, workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(batches, "CHUNK", 1)  # every line its own page: the second line updates the first's row
    path = write(tmp_path, "twice.csv", "Record ID,Deal Name,Amount\n1,Acme,100\n2,Globex,5\n1,Acme,250\n")
    preview = batches.preview(db, settings, workspace["id"], path)
    applied = batches.apply(db, settings, workspace["id"], preview["batch_id"])
    assert (applied["inserted"], applied["updated"]) == (2, 1)
    state = snapshot(db, workspace, preview["batch_id"])
    assert [(c["source_id"], c["action"], c["no_prior"], c["hash_matches"]) for c in state["changes"]] == [
        ("1", "inserted", True, True), ("2", "inserted", True, True)]
    assert batches.rollback(db, workspace["id"], preview["batch_id"], run_pipeline=False)["deleted"] == 2


def test_rollback_after_an_update_batch_restores_from_the_recorded_prior(db, settings, workspace, tmp_path):
    v1 = batches.preview(db, settings, workspace["id"], write(tmp_path, "v1.csv", DEALS))
    batches.apply(db, settings, workspace["id"], v1["batch_id"], run_pipeline=False)
    before = snapshot(db, workspace, v1["batch_id"])["deals"]
    v2 = batches.preview(db, settings, workspace["id"], write(tmp_path, "v2.csv", DEALS.replace(".50\"", ".75\"")))
    applied = batches.apply(db, settings, workspace["id"], v2["batch_id"], run_pipeline=False)
    assert (applied["inserted"], applied["updated"]) == (0, 60)
    changes = snapshot(db, workspace, v2["batch_id"])["changes"]
    assert len(changes) == 60 and all(c["action"] == "updated" and not c["no_prior"] and c["hash_matches"]
                                      for c in changes)
    batches.rollback(db, workspace["id"], v2["batch_id"], run_pipeline=False)
    assert snapshot(db, workspace, v1["batch_id"])["deals"] == before


def test_a_failure_while_reading_pages_fails_the_apply_and_stops_the_worker(db, settings, workspace, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(batches, "CHUNK", 10)
    preview = batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", DEALS))
    for f in kept_pages(settings, preview["batch_id"]):
        f.unlink()
    real_row = Transformer.row

    def failing(self, number, cells):
        if number > 40:
            raise RuntimeError("disk read error")
        return real_row(self, number, cells)

    monkeypatch.setattr(Transformer, "row", failing)
    with pytest.raises(RuntimeError, match="disk read error"):
        batches.apply(db, settings, workspace["id"], preview["batch_id"])
    assert batches.get_batch(db, workspace["id"], preview["batch_id"])["status"] == "failed"
    assert snapshot(db, workspace, preview["batch_id"])["deals"] == []
    assert children() == []


def children() -> list[int]:
    """This process's live (or unreaped) child processes, from /proc."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def test_workers_hand_back_results_in_order_and_a_dead_ones_items_are_worked_here():
    parent = os.getpid()

    def work(n):
        if n == 3 and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker of items 1, 3, 5, 7 dies on its second item
        return n * 2, os.getpid() == parent

    with ForkedMap(range(8), work) as results:
        out = list(results)
    assert [(n, doubled) for n, (doubled, _) in out] == [(n, 2 * n) for n in range(8)]
    assert [here for _, (_, here) in out] == [False, False, False, True, False, True, False, True]
    assert children() == []


def test_a_worker_forked_while_another_thread_held_a_lock_is_replaced_not_waited_for():
    """fork copies only the forking thread: a lock another thread of the server held at that moment stays held
    in the child for good, and a worker whose work needs it never answers. Once it has been silent for `stall`
    seconds it is killed and its items are worked on here (where the lock is free again), in order."""
    import threading

    lock, held, release = threading.Lock(), threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            release.wait(10)

    def work(n):
        with lock:
            return n * 2, os.getpid()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    with ForkedMap(range(4), work, stall=0.5) as results:  # both workers forked with the lock held
        release.set()
        out = list(results)
    thread.join()
    assert [(n, doubled) for n, (doubled, _) in out] == [(n, 2 * n) for n in range(4)]
    assert {pid for _, (_, pid) in out} == {os.getpid()}  # every item was worked on here
    assert children() == []  # the stuck workers were killed and reaped


def test_an_error_in_a_worker_is_raised_here_as_itself_and_every_worker_is_reaped():
    from core.errors import InputError

    def work(n):
        if n == 2:
            raise InputError("row 2, Amount: 'lots' is not an amount", row=2, field="Amount")
        return n

    with pytest.raises(InputError) as err, ForkedMap(range(6), work) as results:
        list(results)
    assert err.value.details == {"row": 2, "field": "Amount"} and "lots" in err.value.message
    assert children() == []


def test_items_marshal_cannot_hold_travel_pickled():
    from datetime import datetime, timezone

    cells = [(7, ["Acme", datetime(2026, 3, 15, 9, 30, tzinfo=timezone.utc), 12.5, None])]
    with ForkedMap([cells, cells], lambda chunk: chunk[0][1][1].isoformat()) as results:
        assert [r for _, r in results] == ["2026-03-15T09:30:00+00:00"] * 2


def test_a_failed_write_stops_the_worker(db, settings, workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(batches, "CHUNK", 5)
    preview = batches.preview(db, settings, workspace["id"], write(tmp_path, "deals.csv", DEALS))
    calls = []

    def failing_upsert(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("connection lost")
        return upsert_rows(*args, **kwargs)

    monkeypatch.setattr(batches, "upsert_rows", failing_upsert)
    with pytest.raises(RuntimeError, match="connection lost"):
        batches.apply(db, settings, workspace["id"], preview["batch_id"])
    assert children() == []
    assert gc.isenabled()


# --- upsert: what it wrote, handed back ---------------------------------------------------------------------------

def deal(sid, **kw):
    return {"source": "hubspot", "source_id": sid, "name": f"Deal {sid}", "amount": Decimal("1000"), **kw}


def stored(conn, workspace):
    return {r["source_id"]: r for r in conn.execute(
        "SELECT source_id, id, row_hash FROM deals WHERE workspace_id = %s", (workspace["id"],)).fetchall()}


def test_a_first_load_hands_back_the_ids_and_digests_it_wrote(db, workspace):
    with db.connection() as conn:
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")], capture_prior=True)
        rows = stored(conn, workspace)
    assert sorted(result.written_rows) == sorted((r["id"], "inserted", r["row_hash"]) for r in rows.values())
    assert sorted(result.inserted_ids) == sorted(r["id"] for r in rows.values())
    assert all(i.version == 4 for i in result.inserted_ids)


def test_an_update_hands_back_the_ids_and_new_digests(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [deal("1"), deal("2")])
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1", amount=5), deal("2"), deal("3")],
                             capture_prior=True)
        rows = stored(conn, workspace)
    assert result.counts() == {"inserted": 1, "updated": 1, "unchanged": 1}
    assert sorted(result.written_rows) == sorted([(rows["1"]["id"], "updated", rows["1"]["row_hash"]),
                                                  (rows["3"]["id"], "inserted", rows["3"]["row_hash"])])


def test_without_capture_nothing_is_handed_back(db, workspace):
    with db.connection() as conn:
        result = upsert_rows(conn, "deals", workspace["id"], [deal("1")])
    assert result.written_rows == [] and result.inserted_ids == []


def test_prepared_rows_write_exactly_what_the_rows_would(db, workspace):
    from core.workspaces import create_workspace

    with db.connection() as conn:
        other = create_workspace(conn, "Second")
        rows = [deal("1"), deal("2", stage="won", custom_fields={"x": "a\tb"})]
        plain = upsert_rows(conn, "deals", workspace["id"], rows)
        prepared = upsert_rows(conn, "deals", other["id"], prepare_rows("deals", table_columns(conn, "deals"), rows))
        assert plain.counts() == prepared.counts()
        assert {k: v["row_hash"] for k, v in stored(conn, workspace).items()} == {
            k: v["row_hash"] for k, v in stored(conn, other).items()}
        with pytest.raises(ValueError, match="prepared for 'deals'"):
            upsert_rows(conn, "accounts", workspace["id"], prepare_rows("deals", table_columns(conn, "deals"), rows))


def test_a_gc_pause_nests_and_leaves_the_collector_as_it_found_it():
    assert gc.isenabled()
    with BulkGcPause():
        with BulkGcPause():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with BulkGcPause():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
