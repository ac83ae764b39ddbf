"""``flask instruments import FILE.csv``: creates and updates through the catalog service,
reports every bad row with its line number, and writes nothing unless every row is good."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests import factories

HEADER = "asset_code,name,facility,category"


@pytest.fixture
def catalog(app):  # type: ignore[no-untyped-def]
    """A facility ``EMC`` and two research fields, committed so the command sees them."""
    facility = factories.make_facility(code="EMC", name="Electron Microscopy Center")
    other = factories.make_facility(code="MCL", name="Materials Characterization Lab")
    materials = factories.make_field(code="materials", name="Functional Materials")
    electronics = factories.make_field(code="electronics", name="Electronic Information")
    db.session.commit()
    return {"facility": facility, "other": other, "materials": materials,
            "electronics": electronics}


@pytest.fixture
def write_csv(tmp_path: Path):  # type: ignore[no-untyped-def]
    def _write(text: str, name: str = "instruments.csv", bom: bool = False) -> str:
        path = tmp_path / name
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        return str(path)

    return _write


def _instrument(code: str) -> Instrument | None:
    db.session.expire_all()
    return db.session.scalar(sa.select(Instrument).where(Instrument.asset_code == code))


def _count(model: type = Instrument) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_import_creates_instruments_with_typed_values(runner, catalog, write_csv):
    path = write_csv(
        "asset_code,name,facility,category,make,model,fields,requires_approval,slot_minutes,"
        "min_minutes,max_minutes,user_weekly_quota_minutes,status\n"
        "SEM-9,Field-emission SEM,EMC,SEM,JEOL,JSM-IT800,materials; electronics,yes,30,60,"
        "240,600,limited\n"
        "AFM-9,Atomic force microscope,EMC,AFM,Bruker,Dimension Icon,materials,,,,,,\n",
        bom=True,
    )
    result = runner.invoke(args=["instruments", "import", path])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0" in result.stdout
    sem = _instrument("SEM-9")
    assert (sem.requires_approval, sem.slot_minutes, sem.min_minutes, sem.max_minutes) == (
        True, 30, 60, 240)
    assert sem.user_weekly_quota_minutes == 600 and sem.status == "limited"
    assert sem.field_ids == sorted([catalog["materials"].id, catalog["electronics"].id])
    assert sem.facility_id == catalog["facility"].id and sem.make == "JEOL"
    afm = _instrument("AFM-9")
    assert (afm.requires_approval, afm.slot_minutes, afm.status) == (False, 15, "available")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "instrument.create")) == 2


def test_import_updates_existing_instruments_and_says_so(runner, catalog, write_csv):
    existing = factories.make_instrument(catalog["facility"], asset_code="XRD-1", name="Old name",
                                         make="Bruker", slot_minutes=30, min_minutes=30,
                                         user_weekly_quota_minutes=300)
    db.session.commit()
    path = write_csv(f"{HEADER},make,slot_minutes,user_weekly_quota_minutes,fields\n"
                     "XRD-1,Powder diffractometer,MCL,XRD,,,none,materials\n"
                     "NEW-1,New thing,EMC,Other,,,,electronics\n")
    result = runner.invoke(args=["instruments", "import", path])
    assert result.exit_code == 0, result.output
    assert "line 2: updated existing instrument XRD-1" in result.stdout
    assert "created 1, updated 1" in result.stdout
    updated = _instrument("XRD-1")
    assert updated.id == existing.id
    assert (updated.name, updated.category, updated.facility_id) == (
        "Powder diffractometer", "XRD", catalog["other"].id)
    assert updated.make == "Bruker" and updated.slot_minutes == 30  # empty cells: unchanged
    assert updated.user_weekly_quota_minutes is None  # "none" clears a quota
    assert updated.field_ids == [catalog["materials"].id]


def test_import_same_file_twice_reports_unchanged(runner, catalog, write_csv):
    path = write_csv(f"{HEADER},fields\nSEM-9,SEM,EMC,SEM,materials\n")
    assert runner.invoke(args=["instruments", "import", path]).exit_code == 0
    audits = _count(AuditEntry)
    result = runner.invoke(args=["instruments", "import", path])
    assert result.exit_code == 0, result.output
    assert "created 0, updated 0, unchanged 1" in result.stdout
    assert _count(AuditEntry) == audits


def test_import_reports_every_bad_row_and_writes_nothing(runner, catalog, write_csv):
    factories.make_instrument(catalog["facility"], asset_code="KEEP-1", name="Keep me")
    db.session.commit()
    before = (_count(), _count(AuditEntry))
    path = write_csv(
        f"{HEADER},slot_minutes,requires_approval,fields,status\n"
        "KEEP-1,Renamed,EMC,SEM,,,,\n"            # line 2: valid update (must be rolled back)
        "B-3,,EMC,SEM,abc,maybe,nope,\n"          # line 3: name, slot, approval, fields
        "B-4,Fine,XXX,SEM,,,,\n"                  # line 4: unknown facility
        "B-5,Good,EMC,SEM,,,materials,\n"         # line 5: valid create (rolled back)
        "B-6,Incoherent,EMC,SEM,7,,,broken\n"     # line 6: policy incoherent, bad status
        "B-5,Twice,EMC,SEM,,,,\n"                 # line 7: duplicate asset code
        "B-8,Extra,EMC,SEM,,,,,surplus\n"         # line 8: more cells than columns
    )
    result = runner.invoke(args=["instruments", "import", path])
    assert result.exit_code == 1, result.output
    err = result.stderr
    for expected in ("line 3: name: This field is required.",
                     "line 3: slot_minutes: Must be a whole number.",
                     "line 3: requires_approval: Must be true or false",
                     "line 3: fields: Unknown research field code: nope",
                     "line 4: facility: Unknown facility code: XXX",
                     "line 6: status: Unknown status.",
                     "line 6: min_minutes: Must be a multiple of the slot length",
                     "line 7: asset_code: Also on line 5",
                     "line 8: (row): More cells"):
        assert expected in err, err
    reported = {line.split(":")[0] for line in err.splitlines() if line.startswith("line ")}
    assert reported == {"line 3", "line 4", "line 6", "line 7", "line 8"}
    assert "5 of 7 rows have errors; nothing was imported" in err
    assert result.stdout == ""
    assert (_count(), _count(AuditEntry)) == before
    assert _instrument("KEEP-1").name == "Keep me"


def test_import_error_lines_are_in_file_order(runner, catalog, write_csv):
    path = write_csv(f"{HEADER}\nA,,EMC,SEM\nA,x,EMC,SEM\nC,,EMC,SEM\n")
    result = runner.invoke(args=["instruments", "import", path])
    numbers = [int(line.split(":")[0].split()[1])
               for line in result.stderr.splitlines() if line.startswith("line ")]
    assert numbers == sorted(numbers)  # the duplicate on line 3 is found first, printed second
    assert set(numbers) == {2, 3, 4}


def test_import_line_numbers_count_physical_lines(runner, catalog, write_csv):
    path = write_csv(f'{HEADER},description\nA,x,EMC,SEM,"two\nlines"\n\nB,x,NOPE,SEM,\n')
    result = runner.invoke(args=["instruments", "import", path])
    assert result.exit_code == 1
    assert "line 5: facility: Unknown facility code: NOPE" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,facility\nX,EMC\n", "missing required columns: asset_code, category"),
        (f"{HEADER},colour\nA,x,EMC,SEM,red\n", "unknown columns: colour"),
        (f"{HEADER},name\nA,x,EMC,SEM,y\n", "repeated columns: name"),
        ("", "The file is empty"),
        ("\n\n", "The file is empty"),
        (f"{HEADER}\n", "header but no instruments"),
    ],
)
def test_import_header_errors_are_one_clear_message(runner, catalog, write_csv, text, message):
    result = runner.invoke(args=["instruments", "import", write_csv(text)])
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert _count() == 0


def test_import_refuses_a_file_that_is_not_utf8(runner, catalog, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"{HEADER}\nA,".encode() + "扫描电镜".encode("gbk") + b",EMC,SEM\n")
    result = runner.invoke(args=["instruments", "import", str(path)])
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr and "line 2" in result.stderr
    assert _count() == 0


def test_import_missing_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(args=["instruments", "import", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
