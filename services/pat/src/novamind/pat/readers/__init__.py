"""Readers of actigraphy device files: each turns a file into a :class:`Recording` or raises a
ValidationError naming the file, the line or field, and what was expected.

:func:`read_recording` detects the format; the per-format readers are also public:

========================  =============================================  ====================
format name               reader                                         source
========================  =============================================  ====================
``awd``                   :func:`read_awd`                               CamNtech Actiwatch
``actiware-csv``          :func:`read_actiware_csv`                      Philips Respironics
``agd``                   :func:`read_agd`                               ActiGraph (SQLite)
``mtn``                   :func:`read_mtn`                               CamNtech MotionWatch
``generic-csv``           :func:`read_generic_csv`                       any device
``apple-health``          :func:`read_apple_health` (steps, HR, sleep)   Apple Health export
``omh-json``              :func:`read_omh_json`                          IEEE 1752.1 / OMH
========================  =============================================  ====================
"""

from novamind.pat.readers.actiware import read_actiware_csv
from novamind.pat.readers.agd import read_agd
from novamind.pat.readers.apple_health import AppleHealthExport, read_apple_health
from novamind.pat.readers.awd import read_awd
from novamind.pat.readers.detect import FORMATS, detect_format, read_recording
from novamind.pat.readers.generic_csv import read_generic_csv
from novamind.pat.readers.mtn import read_mtn
from novamind.pat.readers.omh_json import read_omh_json

__all__ = [
    "FORMATS",
    "AppleHealthExport",
    "detect_format",
    "read_actiware_csv",
    "read_agd",
    "read_apple_health",
    "read_awd",
    "read_generic_csv",
    "read_mtn",
    "read_omh_json",
    "read_recording",
]
