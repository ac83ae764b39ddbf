"""The demo catalog (labbook/demo.py seeds it): the five research fields, the four
platforms, seven facilities with their staffed hours and 40+ instruments with their booking
policies and notes. Data only."""
from __future__ import annotations

from collections import namedtuple
from datetime import time
from typing import Any

FIELDS = (  # code, English, Chinese
    ("manufacturing", "Micro and Nano Smart Manufacturing", "微纳智造"),
    ("materials", "Functional Materials", "功能材料"),
    ("electronics", "Micro and Nano Electronic Information", "微纳电子信息"),
    ("synbio", "Synthetic Biology", "合成生物"),
    ("environment", "Eco-environment Protection", "生态环境保护"),
)

PLATFORMS = (  # code, English, Chinese
    ("excellence", "Center of Excellence", "卓越中心"),
    ("rnd", "R&D Center", "研发中心"),
    ("incubation", "Incubation Center", "孵化中心"),
    ("industry", "Industry Center", "产业中心"),
)

WEEKDAYS = tuple((day, time(8, 30), time(17, 30)) for day in range(5))
SATURDAY_MORNING = ((5, time(9, 0), time(12, 0)),)


DemoFacility = namedtuple(
    "DemoFacility", "code platform name name_zh location description saturday", defaults=(False,)
)


FACILITIES = (
    DemoFacility("NFC", "rnd", "Nanofabrication Cleanroom", "微纳加工洁净间", "Building 3, 1F",
                 "ISO 5/6 cleanroom: lithography, deposition and etching up to 200 mm wafers."),
    DemoFacility("EMC", "excellence", "Electron Microscopy Center", "电子显微镜中心",
                 "Building 1, B1", "SEM, TEM and FIB on vibration-isolated foundations.",
                 saturday=True),
    DemoFacility("MCL", "excellence", "Materials Characterization Lab", "材料表征实验室",
                 "Building 1, 2F", "Structure, surface chemistry and spectroscopy of materials."),
    DemoFacility("SBC", "rnd", "Synthetic Biology Core", "合成生物学核心实验室", "Building 5, 3F",
                 "BSL-2 imaging, cytometry, sequencing and mass spectrometry.", saturday=True),
    DemoFacility("EAL", "industry", "Environmental Analysis Lab", "环境分析实验室",
                 "Building 6, 2F", "Trace organic and inorganic analysis of water, soil and air."),
    DemoFacility("DTM", "incubation", "Device Test & Measurement Lab", "器件测试与测量实验室",
                 "Building 3, 2F", "Wafer-level and packaged device tests from DC to 67 GHz."),
    DemoFacility("BPP", "industry", "Bioprocess Pilot Plant", "生物过程中试平台", "Building 7, 1F",
                 "Scale-up of microbial and cell-culture processes from bench to 50 L."),
)


def _policy(slot: int = 15, low: int | None = None, high: int = 480, **extra: Any) -> dict:
    """A booking policy: slot granularity, minimum and maximum duration (minutes) plus any
    other policy column by its model name."""
    return {"slot_minutes": slot, "min_minutes": low or slot, "max_minutes": high, **extra}


APPROVAL = {"requires_approval": True}


# ``fields``: research field codes separated by spaces; ``policy``: see ``_policy``.
DemoInstrument = namedtuple(
    "DemoInstrument", "asset_code facility category name make model fields room policy status",
    defaults=("available",),
)


I = DemoInstrument  # noqa: E741 - keeps the table below readable
INSTRUMENTS = (
    I("EMC-SEM-01", "EMC", "SEM", "Field-emission SEM Regulus 8230", "Hitachi", "Regulus 8230",
      "materials manufacturing", "101", _policy(30, 30, 240, buffer_minutes=15)),
    I("EMC-SEM-02", "EMC", "SEM", "Analytical FE-SEM GeminiSEM 500", "ZEISS", "GeminiSEM 500",
      "materials synbio", "102", _policy(30, 30, 240, buffer_minutes=15)),
    I("EMC-TEM-01", "EMC", "TEM", "Scanning transmission electron microscope Talos F200X",
      "Thermo Fisher Scientific", "Talos F200X G2", "materials electronics", "110",
      _policy(60, 120, 480, buffer_minutes=30, lead_minutes=1440, **APPROVAL)),
    I("EMC-TEM-02", "EMC", "TEM", "Cryo-transmission electron microscope Glacios",
      "Thermo Fisher Scientific", "Glacios", "synbio", "112",
      _policy(60, 240, 1440, buffer_minutes=60, late_cancel_notice_hours=72, **APPROVAL)),
    I("EMC-FIB-01", "EMC", "FIB", "Dual-beam FIB-SEM Helios 5 UX", "Thermo Fisher Scientific",
      "Helios 5 UX", "manufacturing materials electronics", "115",
      _policy(30, 60, 480, buffer_minutes=30, **APPROVAL)),
    I("MCL-XRD-01", "MCL", "XRD", "Powder X-ray diffractometer D8 Advance", "Bruker",
      "D8 Advance", "materials environment", "201", _policy(30, 30, 720)),
    I("MCL-XRD-02", "MCL", "XRD", "Thin-film X-ray diffractometer SmartLab 9 kW", "Rigaku",
      "SmartLab", "materials electronics", "202", _policy(30, 60, 720)),
    I("MCL-XPS-01", "MCL", "XPS", "X-ray photoelectron spectrometer ESCALAB Xi+",
      "Thermo Fisher Scientific", "ESCALAB Xi+", "materials electronics", "205",
      _policy(60, 60, 480, buffer_minutes=30, **APPROVAL)),
    I("MCL-RAM-01", "MCL", "Raman", "Confocal Raman microscope LabRAM HR Evolution", "HORIBA",
      "LabRAM HR Evolution", "materials environment", "210", _policy(30, 30, 240)),
    I("MCL-AFM-01", "MCL", "AFM", "Atomic force microscope Dimension Icon", "Bruker",
      "Dimension Icon", "materials manufacturing", "212", _policy(30, 60, 240)),
    I("MCL-AFM-02", "MCL", "AFM", "High-speed AFM Cypher ES", "Oxford Instruments Asylum Research",
      "Cypher ES", "materials synbio", "213", _policy(30, 60, 240)),
    I("MCL-FTIR-01", "MCL", "FTIR", "FTIR spectrometer Nicolet iS50", "Thermo Fisher Scientific",
      "Nicolet iS50", "materials environment", "215",
      _policy(15, 15, 120, requires_qualification=False)),
    I("MCL-TGA-01", "MCL", "Thermal analysis", "Simultaneous thermal analyzer STA 449 F3 Jupiter",
      "NETZSCH", "STA 449 F3 Jupiter", "materials", "220", _policy(60, 60, 1440)),
    I("MCL-NMR-01", "MCL", "NMR", "600 MHz NMR spectrometer AVANCE NEO", "Bruker",
      "AVANCE NEO 600", "materials synbio", "105",
      _policy(15, 15, 720, user_weekly_quota_minutes=600, **APPROVAL)),
    I("MCL-PPMS-01", "MCL", "PPMS", "Physical property measurement system DynaCool",
      "Quantum Design", "PPMS DynaCool 9 T", "materials electronics", "225",
      _policy(60, 240, 4320, late_cancel_notice_hours=72, **APPROVAL), "limited"),
    I("NFC-EBL-01", "NFC", "E-beam lithography", "Electron-beam lithography system EBPG 5200",
      "Raith", "EBPG 5200", "manufacturing electronics", "C101",
      _policy(60, 60, 720, buffer_minutes=30, horizon_days=30, user_weekly_quota_minutes=480,
              team_weekly_quota_minutes=1200, **APPROVAL)),
    I("NFC-MA-01", "NFC", "Mask aligner", "Mask aligner MA6 Gen4", "SUSS MicroTec", "MA6 Gen4",
      "manufacturing electronics", "C105", _policy(15, 15, 240)),
    I("NFC-MLA-01", "NFC", "Laser lithography", "Maskless aligner MLA 150",
      "Heidelberg Instruments", "MLA 150", "manufacturing electronics", "C106",
      _policy(30, 30, 480)),
    I("NFC-ALD-01", "NFC", "ALD", "Atomic layer deposition system TFS 200", "Beneq", "TFS 200",
      "manufacturing materials", "C110", _policy(30, 60, 720, buffer_minutes=30)),
    I("NFC-SPU-01", "NFC", "Sputter", "Magnetron sputtering system ATC Orion 8",
      "AJA International", "ATC Orion 8", "manufacturing materials", "C111",
      _policy(30, 60, 480, buffer_minutes=15)),
    I("NFC-EVA-01", "NFC", "Evaporator", "Electron-beam evaporator PVD 75", "Kurt J. Lesker",
      "PVD 75", "manufacturing electronics", "C112", _policy(30, 60, 480)),
    I("NFC-ICP-01", "NFC", "ICP-RIE", "ICP-RIE etcher PlasmaPro 100 Cobra", "Oxford Instruments",
      "PlasmaPro 100 Cobra", "manufacturing electronics", "C115",
      _policy(15, 30, 240, buffer_minutes=15)),
    I("NFC-DRIE-01", "NFC", "DRIE", "Deep silicon etcher Rapier", "SPTS Technologies",
      "Omega Rapier", "manufacturing", "C116", _policy(30, 60, 480, buffer_minutes=15)),
    I("NFC-DIC-01", "NFC", "Dicing saw", "Automatic dicing saw DAD3240", "DISCO", "DAD3240",
      "manufacturing electronics", "C120", _policy(30, 30, 240)),
    I("NFC-ELL-01", "NFC", "Ellipsometer", "Spectroscopic ellipsometer M-2000",
      "J.A. Woollam", "M-2000", "materials electronics", "C121", _policy(15, 15, 120)),
    I("NFC-PRO-01", "NFC", "Profilometer", "Stylus profilometer DektakXT", "Bruker", "DektakXT",
      "manufacturing", "C122", _policy(15, 15, 60, requires_qualification=False)),
    I("DTM-PRB-01", "DTM", "Probe station", "200 mm probe station Summit 12000", "FormFactor",
      "Summit 12000", "electronics", "301", _policy(30, 30, 480)),
    I("DTM-SPA-01", "DTM", "Parameter analyzer", "Semiconductor device analyzer B1500A",
      "Keysight", "B1500A", "electronics materials", "302", _policy(30, 30, 480)),
    I("DTM-PRB-02", "DTM", "Probe station", "Cryogenic probe station CPX", "Lake Shore Cryotronics",
      "CPX-VF", "electronics materials", "303", _policy(60, 120, 1440, buffer_minutes=60),
      "down"),
    I("DTM-VNA-01", "DTM", "Network analyzer", "67 GHz vector network analyzer PNA-X",
      "Keysight", "N5247B PNA-X", "electronics", "305", _policy(30, 30, 480)),
    I("SBC-CLSM-01", "SBC", "Confocal", "Confocal microscope LSM 980 with Airyscan 2", "ZEISS",
      "LSM 980", "synbio", "501", _policy(30, 30, 240, user_weekly_quota_minutes=600)),
    I("SBC-CLSM-02", "SBC", "Confocal", "Resonant-scanning confocal AX R", "Nikon", "AX R",
      "synbio materials", "502", _policy(30, 30, 240)),
    I("SBC-FCM-01", "SBC", "Flow cytometer", "Flow cytometry analyzer LSRFortessa X-20",
      "BD Biosciences", "LSRFortessa X-20", "synbio", "510", _policy(30, 30, 240)),
    I("SBC-FCM-02", "SBC", "Cell sorter", "Cell sorter FACSAria Fusion", "BD Biosciences",
      "FACSAria Fusion", "synbio", "511",
      _policy(60, 60, 480, buffer_minutes=30, **APPROVAL)),
    I("SBC-SEQ-01", "SBC", "Sequencer", "Benchtop sequencer NextSeq 2000", "Illumina",
      "NextSeq 2000", "synbio environment", "520",
      _policy(60, 720, 2880, lead_minutes=1440, horizon_days=180, late_cancel_notice_hours=72,
              **APPROVAL)),
    I("SBC-SEQ-02", "SBC", "Sequencer", "Nanopore sequencer GridION", "Oxford Nanopore",
      "GridION Mk1", "synbio environment", "521", _policy(60, 240, 4320, **APPROVAL)),
    I("SBC-LCMS-01", "SBC", "LC-MS", "High-resolution LC-MS Orbitrap Exploris 480",
      "Thermo Fisher Scientific", "Orbitrap Exploris 480", "synbio environment", "530",
      _policy(60, 60, 1440, buffer_minutes=30, **APPROVAL)),
    I("SBC-LH-01", "SBC", "Liquid handler", "Automated liquid handler Biomek i7",
      "Beckman Coulter", "Biomek i7", "synbio", "540", _policy(30, 30, 480)),
    I("SBC-PR-01", "SBC", "Plate reader", "Multimode microplate reader Spark", "Tecan", "Spark",
      "synbio environment", "541", _policy(15, 15, 240, requires_qualification=False)),
    I("SBC-QPCR-01", "SBC", "qPCR", "Real-time PCR system CFX Opus 96", "Bio-Rad",
      "CFX Opus 96", "synbio environment", "542", _policy(15, 30, 240)),
    I("EAL-GCMS-01", "EAL", "GC-MS", "GC-MS 8890/5977B", "Agilent", "8890 GC / 5977B MSD",
      "environment", "601", _policy(30, 60, 1440, buffer_minutes=30)),
    I("EAL-ICPMS-01", "EAL", "ICP-MS", "ICP-MS 7900", "Agilent", "7900",
      "environment materials", "605", _policy(30, 60, 720, buffer_minutes=30, **APPROVAL)),
    I("EAL-ICPOES-01", "EAL", "ICP-OES", "ICP-OES iCAP PRO", "Thermo Fisher Scientific",
      "iCAP PRO XP", "environment materials", "606", _policy(30, 30, 480)),
    I("EAL-TOC-01", "EAL", "TOC analyzer", "Total organic carbon analyzer TOC-L", "Shimadzu",
      "TOC-L CPH", "environment", "610", _policy(30, 30, 480)),
    I("EAL-LCMS-01", "EAL", "LC-MS", "Triple-quadrupole LC-MS/MS 6500+", "SCIEX",
      "Triple Quad 6500+", "environment synbio", "615",
      _policy(60, 60, 1440, buffer_minutes=30, **APPROVAL)),
    I("BPP-BR-01", "BPP", "Bioreactor", "Parallel bioreactor BIOSTAT B (4 × 5 L)", "Sartorius",
      "BIOSTAT B", "synbio", "701", _policy(60, 240, 10080, late_cancel_notice_hours=72)),
    I("BPP-FER-01", "BPP", "Fermenter", "50 L pilot fermenter BioFlo 320", "Eppendorf",
      "BioFlo 320", "synbio environment", "705",
      _policy(60, 480, 10080, late_cancel_notice_hours=168, **APPROVAL)),
)
del I

CATEGORY_NOTES = {
    "SEM": "Secondary- and backscattered-electron imaging with EDS mapping.",
    "TEM": "High-resolution imaging, diffraction and spectroscopy; staff-assisted sessions.",
    "FIB": "Cross-sectioning, TEM lamella preparation and nano-patterning.",
    "XRD": "Phase identification, texture and thin-film reflectivity.",
    "XPS": "Surface composition and chemical states, with depth profiling.",
    "NMR": "Solution-state 1D and 2D NMR with a cryoprobe and autosampler.",
    "E-beam lithography": "Sub-10 nm patterning on pieces and wafers up to 200 mm.",
    "Sequencer": "Runs are loaded by core staff; submit the sample sheet when booking.",
    "LC-MS": "Targeted and untargeted metabolomics and proteomics workflows.",
    "AFM": "Topography, phase and nanomechanical mapping in air and liquid.",
    "Raman": "Raman mapping with 532, 633 and 785 nm lasers; PL on request.",
    "Confocal": "Live-cell and fixed-sample imaging with an incubation stage.",
    "Flow cytometer": "Up to 18 colours; bring single-stain controls.",
    "ICP-MS": "Trace elements down to ppt levels; acid digestion available.",
    "ALD": "Al2O3, HfO2, TiO2 and ZnO processes; other precursors on request.",
}
DEFAULT_NOTE = "See the facility's user guide before your first session."
