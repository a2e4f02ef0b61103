"""The speed layers: every place where cinestrain departs from a library's plain path only
to be faster, and the one switch of each.

A speed layer gives exactly what the plain path gives, and each is tested against it
(same elements and values, pixel data included; same bytes where bytes are written). It
leans on something the library does not promise, so each can be switched off on its own.
:data:`FAST` (every layer on) is the default everywhere; :data:`PLAIN` runs every
library's own path, to compare against or to rule the layers out when something looks
wrong::

    write_dicom_results(..., speed=PLAIN)            # highdicom builds every object
    iter_parametric_maps(..., speed=PLAIN)           # the same for one quantity's maps
    StoreContext(spool, index, delay, speed=PLAIN)   # pynetdicom encodes each file header

``memo_iod_lookups``
    highdicom's IOD lookups memoized while the writer builds objects, scoped and restored
    (:mod:`dicom_io.write.iod_lookup`). Plain: highdicom searches the standard's tables on
    every lookup. Tested by ``tests/dicom_io/test_iod_lookup.py``.
``derive_phases``
    Phases 2..T of a quantity's Parametric Maps derived from the encoding of phase 1
    (``dicom_io.write.pm._PhaseTemplate``). Plain: highdicom builds every phase. Tested by
    ``tests/dicom_io/test_pm.py::test_fast_path_equals_plain_highdicom_path`` and, with
    the other writer layer, every object of a writing by
    ``tests/dicom_io/test_results.py::test_fast_and_plain_writings_are_the_same_objects``.
``file_header``
    The File Meta Information of a received instance encoded once per SOP class and
    transfer syntax (:mod:`node.receive.filemeta`). Plain: pynetdicom's
    ``Event.encoded_dataset(include_meta=True)``. Tested by ``tests/node/test_filemeta.py``.

One more layer is a setting, not a switch: how long pynetdicom's reader sleeps between
polls of its socket, set from ``node.poll_interval_ms`` through the one function that
writes that private attribute (:func:`node.receive.handlers.set_dul_run_loop_delay`);
1 ms is pynetdicom's own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Speed:
    """Which speed layers are on (each True: the layer; False: the library's own path)."""

    memo_iod_lookups: bool = True
    derive_phases: bool = True
    file_header: bool = True


#: every speed layer on (the default)
FAST = Speed()
#: every library's own path
PLAIN = Speed(memo_iod_lookups=False, derive_phases=False, file_header=False)
