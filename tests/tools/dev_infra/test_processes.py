"""Who holds a port: the name a person needs when a server cannot get its port back."""

from __future__ import annotations

import os
import socket

import pytest

from shared.errors import InfrastructureError
from tools.dev_infra.processes import free_port, port_taken_by, require_free_ports


def test_a_taken_port_names_the_process_listening_on_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        holder = port_taken_by(port)
        assert holder is not None
        assert holder.startswith(f"pid {os.getpid()} (")
        with pytest.raises(InfrastructureError, match=rf"Kafka cannot listen on 127.0.0.1:{port}"):
            require_free_ports([port], "Kafka")
    assert port_taken_by(port) is None


def test_a_free_port_is_not_taken() -> None:
    port = free_port()
    assert port_taken_by(port) is None
    require_free_ports([port], "PostgreSQL")
