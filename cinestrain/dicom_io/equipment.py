"""Who made the objects cinestrain writes: manufacturer, model name, software version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _package_version() -> str:
    try:
        return version("cinestrain")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


#: (0008,0070) Manufacturer of objects cinestrain creates
MANUFACTURER = "cinestrain"
#: (0008,1090) Manufacturer's Model Name
MANUFACTURER_MODEL_NAME = "cinestrain"
#: (0018,1020) Software Versions
SOFTWARE_VERSIONS = _package_version()
#: (0002,0012) Implementation Class UID: generate_uid(entropy_srcs=["cinestrain implementation"])
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.22232735119122687095178905612202893740"
#: (0002,0013) Implementation Version Name (at most 16 characters)
IMPLEMENTATION_VERSION_NAME = f"CINESTRAIN_{SOFTWARE_VERSIONS}"[:16]
#: (0018,1000) Device Serial Number of result objects (and of the SR's device observer)
DEVICE_SERIAL_NUMBER = "CINESTRAIN"
#: Device Observer UID of the SR: generate_uid(entropy_srcs=["cinestrain device observer"])
DEVICE_OBSERVER_UID = "1.2.826.0.1.3680043.8.498.12877247816776093117677229249193786130"
