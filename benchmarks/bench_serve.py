"""Load on `kaprules serve`: concurrent clients over real HTTP, p50/p99 latency and req/s.

Starts ``kaprules serve --workers W`` (kap-standard@2) in a subprocess on a loopback port,
then drives it with CLIENTS threads, each on its own keep-alive connection, each call a hook
call for a patient with 30 held sessions (an Encounter, a last-oral-intake Observation and
a blood pressure panel each) and one proposed appointment. Each client waits for its answer
before it sends the next call (a closed loop, as an EHR's users do).

The client shares the machine's cores with the server, so it is kept lean: every token is
signed and every request's bytes are built before the clock starts (one token per call, so
the service checks each fully: signature, claims, replay), and each thread writes its
request to a raw socket and reads the answer's headers and Content-Length bytes, no HTTP
library in the loop.

    python benchmarks/bench_serve.py [--clients 20] [--calls 100] [--workers N]

Needs the serve extra. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from kaprules.cli._serve import default_workers

ISS = "https://ehr.example.org/"
LOINC = "http://loinc.org"
ESCORT = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PATH = "/cds-services/kap-standard"


def patient(sessions: int) -> dict[str, Any]:
    """A hook call: ``sessions`` held sessions with their data, and one proposal."""
    first = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    appointments, encounters, observations = [], [], []
    for n in range(sessions):
        start = first + dt.timedelta(days=3 * n)
        appointments.append(
            {
                "resourceType": "Appointment",
                "id": f"a{n}",
                "status": "fulfilled",
                "start": start.isoformat(),
                "participant": [
                    {"actor": {"reference": "Practitioner/t1"}, "status": "accepted"},
                    {
                        "type": [{"coding": [{"system": ESCORT, "code": "ESC"}]}],
                        "actor": {"reference": "RelatedPerson/r1"},
                        "status": "accepted",
                    },
                ],
            }
        )
        encounters.append(
            {
                "resourceType": "Encounter",
                "id": f"e{n}",
                "status": "finished",
                "class": {"code": "AMB"},
                "appointment": [{"reference": f"Appointment/a{n}"}],
            }
        )
        observations += [
            {
                "resourceType": "Observation",
                "status": "final",
                "encounter": {"reference": f"Encounter/e{n}"},
                "code": {"coding": [{"system": LOINC, "code": "67517-3"}]},
                "valueDateTime": (start - dt.timedelta(hours=6)).isoformat(),
            },
            {
                "resourceType": "Observation",
                "status": "final",
                "encounter": {"reference": f"Encounter/e{n}"},
                "effectiveDateTime": (start - dt.timedelta(minutes=10)).isoformat(),
                "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                        "valueQuantity": {"value": 124},
                    },
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                        "valueQuantity": {"value": 80},
                    },
                ],
            },
        ]
    proposed = dict(appointments[0], id="new", status="proposed")
    proposed["start"] = (first + dt.timedelta(days=3 * sessions + 1)).isoformat()

    def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in resources],
        }

    return {
        "hook": "appointment-book",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/t1", "patientId": "p1", "appointments": [proposed]},
        "prefetch": {
            "appointments": bundle(appointments),
            "encounters": bundle(encounters),
            "observations": bundle(observations),
        },
    }


def _answer(connection: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 answer (headers, then Content-Length bytes); its status."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = next(
        int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:")
    )
    total = end + 4 + length
    while len(buffer) < total:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    del buffer[:total]
    return status


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) of ``pid`` and its children so far; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) or 0.0 for child in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--calls", type=int, default=100, help="calls per client")
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="kaprules serve --workers (default: the service's own, one per core up to 4)",
    )
    args = parser.parse_args()

    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    folder = Path(tempfile.mkdtemp())
    (folder / "keys.json").write_text(json.dumps({"keys": [public | {"kid": "k"}]}))
    (folder / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "kaprules", "serve", "--protocol", "kap-standard@2",
        "--issuers", str(folder / "issuers.toml"), "--port", str(port),
        "--timezone", "America/Denver", "--max-body-bytes", str(8 * 1024 * 1024),
    ]  # fmt: skip
    if args.workers != 1:
        command += ["--workers", str(args.workers), "--state-dir", str(folder)]
    body = json.dumps(patient(args.sessions)).encode()
    now = int(time.time())

    def request() -> bytes:
        claims = {
            "iss": ISS,
            "aud": base + PATH,
            "exp": now + 900,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        bearer = jwt.encode(claims, key, algorithm="ES384", headers={"kid": "k"})
        return (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {bearer}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()

    # One warm-up call per client (not timed), then its timed calls: all built now.
    heads = [[request() for _ in range(args.calls + 1)] for _ in range(args.clients)]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        time.sleep(0.5 if args.workers > 1 else 0)  # every worker listening
        latencies: list[list[float]] = [[] for _ in range(args.clients)]
        failures: list[int] = []
        ready = threading.Barrier(args.clients + 1)

        def client(number: int) -> None:
            mine = heads[number]
            connection = socket.create_connection(("127.0.0.1", port))
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            connection.sendmsg([mine[0], body])
            if _answer(connection, buffer) != 200:
                failures.append(0)
            ready.wait()
            times = latencies[number]
            clock = time.perf_counter
            for head in mine[1:]:
                started = clock()
                connection.sendmsg([head, body])
                status = _answer(connection, buffer)
                times.append(clock() - started)
                if status != 200:
                    failures.append(status)
            connection.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        ready.wait()
        server_before, client_before = _cpu_seconds(server.pid), time.process_time()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time() - client_before
    finally:
        server.terminate()
        server.wait(10)
    every = sorted(t for times in latencies for t in times)
    p50 = statistics.median(every) * 1000
    p99 = every[max(0, int(len(every) * 0.99) - 1)] * 1000
    # CPU a call, the server's (all its processes) and the client's: what the load on
    # the machine does not change, and so what an idle machine's throughput follows from.
    cpu = "server CPU n/a"
    if server_cpu is not None and server_before is not None:
        cpu = f"server CPU {(server_cpu - server_before) / len(every) * 1000:.2f} ms a call"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{os.cpu_count()} cores (load {load:.1f}), client: {args.clients} threads on raw "
        f"keep-alive sockets, server: {args.workers} worker{'s' if args.workers != 1 else ''}; "
        f"{len(every)} calls, {args.sessions}-session patient, {len(body)} bytes a call: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {len(every) / wall:.0f} req/s, "
        f"{len(failures)} failed; {cpu}, client CPU "
        f"{client_cpu / len(every) * 1000:.2f} ms a call"
    )


if __name__ == "__main__":
    main()
