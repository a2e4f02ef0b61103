"""cinestrain: a DICOM node that computes myocardial strain from cine cardiac MR.

Rooms (see the README's "Layout"): :mod:`cinestrain.config` (the validated settings),
:mod:`cinestrain.dicom_io` (``read/`` cine stacks and SEGs, ``write/`` the results),
:mod:`cinestrain.inference` (``model/`` the motion network, ``heart/`` the LV analysis,
``phantom/`` the synthetic studies, ``training/``), :mod:`cinestrain.node` (the DICOM
service, the job pipeline and the command line). Nothing outside ``node`` imports it.
:mod:`cinestrain.speed`, which any room may import, switches the layers that exist only
for speed (each against the libraries' plain path).
"""

__version__ = "0.1.0"
