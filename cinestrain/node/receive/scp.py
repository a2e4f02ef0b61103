"""The Storage SCP: the application entity, its presentation contexts and handlers.

Accepts Verification, and MR Image, Enhanced MR Image and Segmentation Storage in the
uncompressed and common compressed transfer syntaxes (the dataset is stored as sent;
nothing is transcoded). Association policy (allowed callers, host binding, our AE
title) is enforced by :func:`node.receive.handlers.handle_requested`.
"""

from __future__ import annotations

import logging
import ssl

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MRImageStorage,
    RLELossless,
    SegmentationStorage,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from cinestrain.config.schema import NodeSection, TLSServer
from cinestrain.node.receive.handlers import (
    StoreContext,
    handle_connection_open,
    handle_echo,
    handle_established,
    handle_rejected,
    handle_released,
    handle_requested,
    handle_store,
)

log = logging.getLogger(__name__)

#: Storage SOP classes we accept
STORAGE_SOP_CLASSES = (MRImageStorage, EnhancedMRImageStorage, SegmentationStorage)

#: transfer syntaxes accepted for every storage SOP class (stored as received)
TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)


def build_ae(node: NodeSection) -> AE:
    """The application entity with our title, limits, timeouts and contexts."""
    ae = AE(ae_title=node.ae_title)
    ae.maximum_associations = node.max_associations
    ae.maximum_pdu_size = node.max_pdu
    ae.acse_timeout = node.timeouts.acse_s
    ae.dimse_timeout = node.timeouts.dimse_s
    ae.network_timeout = node.timeouts.network_s
    # pynetdicom's own check is the backstop of handle_requested
    ae.require_called_aet = True
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    return ae


def server_ssl_context(tls: TLSServer) -> ssl.SSLContext | None:
    """The TLS context of the listening port, or None when TLS is off.

    Raises
    ------
    OSError, ssl.SSLError
        A certificate, key or CA file cannot be read.
    """
    if not tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.certificate), str(tls.private_key))
    if tls.ca_certificates is not None:
        context.load_verify_locations(str(tls.ca_certificates))
    context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_certificate else ssl.CERT_NONE
    return context


def start_scp(node: NodeSection, store: StoreContext) -> ThreadedAssociationServer:
    """Start listening (non-blocking); the caller shuts the server down.

    Returns
    -------
    pynetdicom.transport.ThreadedAssociationServer
        The running server (``server.server_address`` has the bound port).

    Raises
    ------
    OSError
        The address cannot be bound (in use, not local); the message names it.
    """
    ae = build_ae(node)
    handlers = [
        (evt.EVT_CONN_OPEN, handle_connection_open, [node]),
        (evt.EVT_REQUESTED, handle_requested, [node, store.metrics]),
        (evt.EVT_REJECTED, handle_rejected, [store.metrics]),
        (evt.EVT_ESTABLISHED, handle_established, [store.metrics]),
        (evt.EVT_RELEASED, handle_released),
        (evt.EVT_ABORTED, handle_released),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [store]),
    ]
    context = server_ssl_context(node.tls)
    try:
        server = ae.start_server(
            (node.bind_address, node.port),
            block=False,
            evt_handlers=handlers,
            ssl_context=context,
        )
    except OSError as exc:  # e.g. EADDRINUSE: say which address, and where it is set
        raise OSError(exc.errno, f"cannot listen for DICOM (section [node]) on "
                      f"{node.bind_address}:{node.port}: {exc.strerror or exc}") from exc
    log.info(
        "listening as %s on %s:%d (TLS %s, %s)",
        node.ae_title, node.bind_address, server.server_address[1],
        "on" if node.tls.enabled else "off",
        "any caller" if node.allow_any_caller
        else f"{len(node.allowed_callers)} allowed caller(s)",
    )
    return server
