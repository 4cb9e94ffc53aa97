"""The invariants of the exactly-once simulation, checked after every run and after the final catch-up.

``Invariants`` is mixed into the simulation: it reads the world and the destination's files, and
keeps the record of what was delivered where (``seen``, ``delivered_in`` and the broadcast files).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.simulation.world import (
    BRANDS,
    LABELS,
    SENTINEL_IDS,
    SIM_END,
    WRONG_CLOCK_BRAND,
    Brand,
    Customer,
    Event,
    World,
)
from tests.support.project import Project

ACTIVITY_HEADER = [
    "broadcastid",
    "customerid",
    "externalid",
    "email",
    "activity",
    "activitydate",
    "description",
    "eventid",
    "registereddate",
]
BROADCAST_HEADER = ["broadcastid", "broadcasttype", "description", "subject", "sentdate"]
FILE_NAME = re.compile(r"^(activity|broadcast)_([A-Z]+)_(\d{8}|\d{10})\.csv$")
FAILPOINTS = ("after-write", "mid-upload", "after-upload")


@dataclass
class RunResult:
    now: datetime
    how: str
    returncode: int
    stdout: str
    stderr: str


class Invariants:
    """What every run and the final catch-up must leave on the destination."""

    # the simulation's own state, read here; the record of deliveries is kept here
    world: World
    with_loaded_at: bool
    project: Project
    config: Path
    server: Path
    tmp: Path
    builds: list[datetime]
    seen: dict[str, str]
    delivered_in: dict[int, str]
    activity_broadcasts: dict[str, set[int]]
    broadcast_files: dict[str, set[int]]
    first_run_at: datetime | None
    killed_leftovers: set[str]
    overlapped: bool  # the files now checked come from a run that a build overlapped
    fail: Callable[[str], None]

    def check_run(self, result: RunResult) -> None:
        output = result.stdout + result.stderr
        at = f"run --now {result.now.isoformat()} ({result.how})"
        if result.returncode == -signal.SIGKILL:
            if result.how not in (*FAILPOINTS, "sigkill"):
                self.fail(f"{at} died of a SIGKILL nobody sent:\n{output[-3000:]}")
            return
        if "Traceback" in output:
            self.fail(f"{at} crashed:\n{output[-3000:]}")
        stopped = {"sigterm": 143, "sigint": 130}.get(result.how)
        paused = "paused at" in result.stderr
        if paused and result.returncode != stopped:
            self.fail(f"{at} exited {result.returncode} when stopped, expected {stopped}:\n{output[-3000:]}")
        if not paused and result.returncode not in (0, 1):
            self.fail(f"{at} exited {result.returncode}:\n{output[-3000:]}")
        leftovers = [p.name for p in self.tmp.iterdir() if p.name not in self.killed_leftovers]
        if leftovers:
            self.fail(f"{at} left temporary files behind: {leftovers}")
        if paused:
            partials = [str(p.relative_to(self.server)) for p in self.server.rglob(".*.partial")]
            if partials:
                self.fail(f"{at} was stopped and left half-published files: {partials}")

    def delivered_files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        if not self.server.exists():
            return files
        for path in sorted(self.server.rglob("*")):
            if not path.is_file():
                continue
            relative = str(path.relative_to(self.server))
            if path.name.startswith(".") and path.name.endswith(".partial"):
                continue  # a hidden upload in progress (or left by a kill): not delivered
            brand_folder = relative.split("/")[0]
            match = FILE_NAME.match(path.name)
            if match is None or match.group(2) != brand_folder:
                self.fail(f"unexpected file on the destination: {relative}")
            files[relative] = path
        return files

    def check_files(self) -> None:
        files = self.delivered_files()
        vanished = sorted(set(self.seen) - set(files))
        if vanished:
            self.fail(f"delivered files disappeared: {vanished[:5]}")
        for relative, path in files.items():
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            if relative in self.seen:
                if self.seen[relative] != digest:
                    self.fail(f"delivered file {relative} changed after it was first seen")
                continue
            self.seen[relative] = digest
            kind, code, stamp = FILE_NAME.match(path.name).groups()  # type: ignore[union-attr]
            brand = BRANDS[code]
            self.check_erased_nowhere(relative, code, content)
            if kind == "activity":
                self.check_activity_file(relative, brand, stamp, content)
            else:
                self.check_broadcast_file(relative, brand, stamp, content)
        for relative, referenced in self.activity_broadcasts.items():
            partner = relative.replace("/activity_", "/broadcast_")
            if partner in self.broadcast_files and not referenced <= self.broadcast_files[partner]:
                missing = sorted(referenced - self.broadcast_files[partner])
                self.fail(f"{partner} lacks broadcasts {missing} that {relative} refers to")

    def erasure_known(self, customer: Customer) -> bool:
        """Whether the warehouse the files are written from knows the erasure: the latest build, or
        for a run that a build overlapped the one before it (the run reads one snapshot, which may
        be taken before that build commits; the files of every later run leave the customer out,
        as docs/file-format.md says)."""
        built = self.builds[:-1] if self.overlapped else self.builds
        visible = customer.erasure_visible_at
        return visible is not None and bool(built) and visible <= built[-1]

    def check_erased_nowhere(self, relative: str, code: str, content: bytes) -> None:
        """Erased means erased everywhere: a file written after the erasure holds none of the
        customer's addresses or its number, in no column (bounce messages and tracked links too)."""
        text = content.decode("utf-8", errors="replace")
        for customer in self.world.customers.values():
            if customer.brand != code or not self.erasure_known(customer):
                continue
            found = [value for value in customer.personal() if value in text]
            if found:
                self.fail(
                    f"{relative}, written after customer {customer.customer_id} of {code} was erased "
                    f"(erasure arrived {customer.erasure_visible_at:%m-%d %H:%M}), holds {found}"
                )

    def _rows(self, relative: str, content: bytes, header: list[str]) -> list[dict[str, str]]:
        text = content.decode("utf-8")
        if text.startswith("\ufeff"):
            self.fail(f"{relative} starts with a byte order mark")
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=";")
        if reader.fieldnames != header:
            self.fail(f"{relative}: header {reader.fieldnames}, expected {header}")
        return list(reader)

    def check_activity_file(self, relative: str, brand: Brand, stamp: str, content: bytes) -> None:
        start, end = brand.bounds(stamp)
        referenced: set[int] = set()
        for row in self._rows(relative, content, ACTIVITY_HEADER):
            event_id = int(row["eventid"])
            event = self.world.events.get(event_id)
            if event is None:
                self.fail(f"{relative}: event {event_id} does not exist")
                return
            if event_id in self.delivered_in:
                self.fail(
                    f"event {event_id} delivered twice: in {self.delivered_in[event_id]} and {relative}"
                )
            self.delivered_in[event_id] = relative
            broadcast = self.world.broadcasts[event.broadcast_id]
            customer = self.world.customers[(event.brand, event.customer_id)]
            if event.brand != brand.code or not self.world.exportable(event):
                self.fail(
                    f"{relative}: event {event_id} ({event.brand}, {event.event_type} on a "
                    f"{broadcast.channel} broadcast) must not be exported here"
                )
            local = brand.zone
            expected = {
                "broadcastid": str(event.broadcast_id),
                "customerid": str(event.customer_id),
                "externalid": customer.external_id,
                "email": event.email or customer.email,
                "activity": LABELS[event.event_type.lower()],
                "activitydate": event.occurred_at.astimezone(local).strftime("%Y-%m-%d %H:%M:%S"),
                "description": event.url or event.message or "",
            }
            if not customer.in_customers:  # no customer row to take them from
                expected["externalid"] = ""
                expected["email"] = event.email or ""
            if self.erasure_known(customer):  # the address, the number and every free text empty
                expected.update(externalid="", email="", description="")
            wrong = {key: (row[key], value) for key, value in expected.items() if row[key] != value}
            registrations = {
                d.registered_at.astimezone(local).strftime("%Y-%m-%d %H:%M:%S") for d in event.deliveries
            }
            if row["registereddate"] not in registrations:
                wrong["registereddate"] = (row["registereddate"], ", ".join(sorted(registrations)))
            if wrong:
                self.fail(f"{relative}: event {event_id}: (delivered, expected) {wrong}")
            if end <= event.registered_at:
                self.fail(
                    f"{relative}: event {event_id} registered at {event.registered_at.isoformat()}, "
                    f"after the period [{start.isoformat()}, {end.isoformat()}) ended"
                )
            if not self.ever_trusted(event):
                self.fail(
                    f"{relative}: event {event_id}, stamped by a wrong clock (registered "
                    f"{event.registered_at.isoformat()}, loaded {event.deliveries[0].loaded_at.isoformat()}), "
                    f"is delivered before its time came: the latest build's clock is {self.builds[-1].isoformat()}"
                )
            on_time = self.registration_period_if_on_time(event, brand)
            if on_time is not None and on_time != stamp:
                self.fail(
                    f"{relative}: event {event_id} reached the warehouse before its registration "
                    f"period ({on_time}) could be exported, yet lands in period {stamp}"
                )
            referenced.add(event.broadcast_id)
        self.activity_broadcasts[relative] = referenced

    def ever_trusted(self, event: Event) -> bool:
        """Whether a build so far trusted the event: before, its time had not come."""
        return any(self.world.trusted_by(event, built, self.with_loaded_at) for built in self.builds)

    def watermark_floors(self) -> dict[str, datetime]:
        """Per brand, a lower bound of its watermark after the latest build, from the world alone.

        Build by build: the horizon is the newest registration among the e-mail events seen so
        far, and a brand is held at the earliest registration among its events whose broadcast or
        customer has not arrived; a wrong clock's events count for neither until a build's clock
        trusts them. Each event counts with the earliest registration among its rows committed by
        then, so the bound is never above what the models may compute.
        """
        floors: dict[str, datetime] = {}
        horizon: datetime | None = None
        for built in self.builds:
            held: dict[str, datetime] = {}
            for event in self.world.events.values():
                registrations = [d.registered_at for d in event.deliveries if d.visible_at <= built]
                if event.event_type.lower() not in LABELS or not self.world.trusted_by(
                    event, built, self.with_loaded_at
                ):
                    continue
                registered = min(registrations)
                broadcast = self.world.broadcasts[event.broadcast_id]
                customer = self.world.customers[(event.brand, event.customer_id)]
                if broadcast.visible_at > built or (
                    broadcast.channel == "email" and customer.visible_at > built
                ):
                    held[event.brand] = min(held.get(event.brand, registered), registered)
                if broadcast.visible_at <= built and broadcast.channel == "email":
                    horizon = registered if horizon is None else max(horizon, registered)
            if horizon is None:
                continue
            for code in BRANDS:
                complete = min(horizon, held.get(code, horizon))
                floors[code] = max(floors.get(code, complete), complete)
        return floors

    def check_on_time(self, now: datetime) -> None:
        """After a run that went normally, every brand has every due period up to its watermark:
        no brand is held back by rows of a wrong clock (its own or another brand's)."""
        files = self.delivered_files()
        for code, floor in self.watermark_floors().items():
            brand = BRANDS[code]
            stamps = [FILE_NAME.match(Path(r).name).group(3) for r in files if r.startswith(code + "/")]  # type: ignore[union-attr]
            if brand.start is not None:
                stamp = brand.stamp(
                    datetime.combine(brand.start, datetime.min.time()).replace(tzinfo=brand.zone)
                )
            elif stamps:
                stamp = min(stamps, key=lambda s: brand.bounds(s)[0])
            else:
                continue
            latest_due = brand.bounds(brand.latest_due_stamp(now))[0]
            undelivered = []
            while brand.bounds(stamp)[1] <= floor and brand.bounds(stamp)[0] <= latest_due:
                if any(
                    f"{code}/{kind}_{code}_{stamp}.csv" not in files for kind in ("activity", "broadcast")
                ):
                    undelivered.append(stamp)
                stamp = brand.next_stamp(stamp)
            if undelivered:
                self.fail(
                    f"{code}: run --now {now.isoformat()} left due periods {undelivered[:5]} undelivered, "
                    f"although its watermark is at least {floor.isoformat()}"
                )

    def registration_period_if_on_time(self, event: Event, brand: Brand) -> str | None:
        """The period an event must be in when it entered the export on time, else None.

        It enters at the first build that sees a delivery of it, its broadcast and its customer.
        Everything an earlier build saw was registered (and loaded) before that earlier build, so
        no watermark before this build is later: a registration at or after the previous build
        is "on time" and its own period was not exported yet.
        """
        broadcast = self.world.broadcasts[event.broadcast_id]
        customer = self.world.customers[(event.brand, event.customer_id)]
        for index, built in enumerate(self.builds):
            visible = [d for d in event.deliveries if d.visible_at <= built]
            trusted = self.world.trusted_by(event, built, self.with_loaded_at)  # else quarantined
            if visible and trusted and broadcast.visible_at <= built and customer.visible_at <= built:
                registered = min(d.registered_at for d in visible)
                if index == 0 or registered >= self.builds[index - 1]:
                    return brand.stamp(registered)
                return None
        return None

    def check_broadcast_file(self, relative: str, brand: Brand, stamp: str, content: bytes) -> None:
        ids: set[int] = set()
        for row in self._rows(relative, content, BROADCAST_HEADER):
            broadcast_id = int(row["broadcastid"])
            broadcast = self.world.broadcasts.get(broadcast_id)
            if broadcast is None or broadcast.brand != brand.code or broadcast.channel != "email":
                self.fail(f"{relative}: broadcast {broadcast_id} is not an e-mail broadcast of {brand.code}")
                return
            if broadcast_id in ids:
                self.fail(f"{relative}: broadcast {broadcast_id} twice")
            ids.add(broadcast_id)
            expected = {
                "broadcasttype": broadcast.broadcast_type,
                "description": broadcast.description,
                "subject": broadcast.subject,
                "sentdate": broadcast.sent_at.astimezone(brand.zone).strftime("%Y-%m-%d %H:%M:%S"),
            }
            wrong = {key: (row[key], value) for key, value in expected.items() if row[key] != value}
            if wrong:
                self.fail(f"{relative}: broadcast {broadcast_id}: (delivered, expected) {wrong}")
        self.broadcast_files[relative] = ids

    def check_final(self, final: RunResult) -> None:
        if final.returncode != 0:
            self.fail(
                f"the final catch-up exited {final.returncode}:\n{final.stdout[-3000:]}\n{final.stderr[-3000:]}"
            )
        partials = [str(p) for p in self.server.rglob(".*.partial")]
        if partials:
            self.fail(f"hidden partial files left after the final catch-up: {partials}")
        files = self.delivered_files()
        for code, brand in BRANDS.items():
            stamps = {FILE_NAME.match(Path(r).name).group(3) for r in files if r.startswith(code + "/")}  # type: ignore[union-attr]
            if not stamps:
                self.fail(f"{code}: nothing delivered at all")
            for stamp in stamps:
                for kind in ("activity", "broadcast"):
                    if f"{code}/{kind}_{code}_{stamp}.csv" not in files:
                        self.fail(f"{code}: period {stamp} has no {kind} file")
            first, last = (
                min(stamps, key=lambda s: brand.bounds(s)[0]),
                max(stamps, key=lambda s: brand.bounds(s)[0]),
            )
            if brand.start is not None and first != brand.stamp(
                datetime.combine(brand.start, datetime.min.time()).replace(tzinfo=brand.zone)
            ):
                self.fail(f"{code}: the first period delivered is {first}, its start is {brand.start}")
            if brand.start is None:
                assert self.first_run_at is not None
                latest_due = brand.latest_due_stamp(self.first_run_at)
                if brand.bounds(first)[0] > brand.bounds(latest_due)[0]:
                    self.fail(
                        f"{code} (no start): the first period delivered is {first}, but {latest_due} "
                        f"was due at the first run ({self.first_run_at.isoformat()})"
                    )
            if brand.bounds(last)[1] <= SIM_END:
                self.fail(f"{code}: the final catch-up stopped at period {last}, before the month ended")
            stamp = first
            while stamp != last:  # nothing skipped
                if stamp not in stamps:
                    self.fail(f"{code}: period {stamp} was never delivered (first {first}, last {last})")
                stamp = brand.next_stamp(stamp)

            first_start = brand.bounds(first)[0]
            missing = sorted(
                event.event_id
                for event in self.world.events.values()
                if event.brand == code
                and event.event_id < SENTINEL_IDS
                and self.world.exportable(event)
                and event.registered_at >= first_start
                and self.ever_trusted(event)
                and event.event_id not in self.delivered_in
            )
            if missing:
                details = "\n".join(self.describe(self.world.events[event_id]) for event_id in missing[:8])
                self.fail(f"{code}: {len(missing)} e-mail events never delivered, e.g.\n{details}")
            never_due = [
                event
                for event in self.world.events.values()
                if event.brand == code and not self.ever_trusted(event)
            ]
            if never_due and code != WRONG_CLOCK_BRAND:
                self.fail(f"{code}: events of a wrong clock outside {WRONG_CLOCK_BRAND}: {never_due[:3]}")
            for event in never_due:  # its time never came: in no file, and it held nobody back
                if event.event_id in self.delivered_in:
                    self.fail(
                        f"event {event.event_id}, registered {event.registered_at.isoformat()} and loaded "
                        f"{event.deliveries[0].loaded_at.isoformat()} (a wrong clock), was delivered in "
                        f"{self.delivered_in[event.event_id]} although its time never came"
                    )

            listed = set().union(
                *(ids for relative, ids in self.broadcast_files.items() if relative.startswith(code + "/"))
            )
            unlisted = sorted(
                broadcast.broadcast_id
                for broadcast in self.world.broadcasts.values()
                if broadcast.brand == code
                and broadcast.channel == "email"
                and broadcast.sent_at >= first_start
                and broadcast.broadcast_id not in listed
            )
            if unlisted:  # also one that arrived after its brand's watermark passed its send
                details = "; ".join(
                    f"{b} sent {self.world.broadcasts[b].sent_at:%m-%d %H:%M}, arrived "
                    f"{self.world.broadcasts[b].visible_at:%m-%d %H:%M}"
                    for b in unlisted
                )
                self.fail(f"{code}: e-mail broadcasts in no broadcast file: {details}")

        for broadcast in self.world.broadcasts.values():  # a broadcast sent in a period is in its file
            brand = BRANDS[broadcast.brand]
            relative = f"{brand.code}/broadcast_{brand.code}_{brand.stamp(broadcast.sent_at)}.csv"
            if broadcast.channel != "email" or relative not in self.broadcast_files:
                continue
            entered = next(i for i, built in enumerate(self.builds) if broadcast.visible_at <= built)
            on_time = entered == 0 or broadcast.sent_at >= self.builds[entered - 1]
            if on_time and broadcast.broadcast_id not in self.broadcast_files[relative]:
                self.fail(
                    f"{relative} lacks broadcast {broadcast.broadcast_id}, sent "
                    f"{broadcast.sent_at.isoformat()} and known before that period could be exported"
                )

        status = self.project.run(
            "status",
            "--config",
            str(self.config),
            "--now",
            final.now.isoformat(),
            "--json",
            *self.project.cli_args(),
        )
        for tenant in json.loads(status.stdout)["tenants"]:
            if tenant.get("pending") or tenant.get("failed") or tenant.get("overdue"):
                self.fail(f"status after the final catch-up: {tenant}")

    def describe(self, event: Event) -> str:
        broadcast = self.world.broadcasts[event.broadcast_id]
        customer = self.world.customers[(event.brand, event.customer_id)]
        deliveries = "; ".join(
            f"registered {d.registered_at:%m-%d %H:%M} committed {d.visible_at:%m-%d %H:%M}"
            for d in event.deliveries
        )
        return (
            f"  event {event.event_id} {event.event_type} on broadcast {event.broadcast_id} "
            f"(arrived {broadcast.visible_at:%m-%d %H:%M}), customer {event.customer_id} "
            f"(arrived {customer.visible_at:%m-%d %H:%M}): {deliveries}"
        )
