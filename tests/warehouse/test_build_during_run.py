"""A `dbt build` while a run reads a period, on PostgreSQL: the run reads one consistent state.

The loader reads a period's files in one transaction (one snapshot). A relation that a build
replaces by another under the same name (create, rename, drop: dbt's table materialization) is
found by name at the moment it is first read, so a reader that had not yet touched it saw the new
relation through its old snapshot: empty. The broadcast file of a period then came out without the
broadcasts its activity file refers to. Here a reader opens the warehouse as the loader does, reads
the activity slice, waits while a build replaces every export relation's content, then reads the
rest: it must see what was there when it began, and the build must not wait for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.bad_rows import build_vars, delivery, raw_project
from tests.support.project import ROOT
from tests.support.warehouses import execute

READER = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    from activity_export.warehouse import connect, resolve_target

    target = resolve_target(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    with connect(target) as warehouse:
        con = warehouse.con
        con.execute("begin transaction")  # as writer.write_period does: one snapshot

        def rows(relation, columns):
            query = f"select {columns} from {warehouse.native_relation(relation)} order by 1"
            return [list(map(str, row)) for row in con.sql(f"select * from {warehouse.native(query)}").fetchall()]

        seen = {"export_activities": rows("export_activities", "event_id")}
        print("read", flush=True)
        sys.stdin.readline()  # the build runs now
        for relation, columns in (
            ("export_broadcasts", "broadcast_id"),
            ("export_erasures", "customer_id"),
            ("export_held_events", "event_id"),
            ("export_quarantined_events", "event_id"),
        ):
            seen[relation] = rows(relation, columns)
        con.execute("commit")
        print(json.dumps(seen), flush=True)
    """
)

BEFORE = "2026-11-03T12:00:00+00:00"
AFTER = "2026-11-04T12:00:00+00:00"


def test_a_build_during_a_read_changes_nothing_the_reader_sees(tmp_path: Path) -> None:
    with raw_project("postgres", tmp_path) as project:
        execute(
            project,
            [
                "create table raw.erasures (brand text, customer_id bigint, erased_at timestamptz)",
                "insert into raw.erasures values ('A', 7, '2026-11-02 10:00:00+00')",
                "insert into raw.events values "
                + ", ".join(
                    [
                        delivery(1, "A", 10, 7, "2026-11-02 09:00:00", "2026-11-02 09:01:00"),
                        delivery(2, "A", 99, 7, "2026-11-02 09:30:00", "2026-11-02 09:31:00"),  # held
                        delivery(3, "A", 10, 7, "2999-01-01 00:00:00", "2026-11-02 09:31:00"),  # future
                    ]
                ),
            ],
        )
        project.dbt("seed")
        project.build(*build_vars(BEFORE))
        # what the next build would change in every relation the loader reads
        execute(
            project,
            [
                "insert into raw.broadcasts values (11, 'A', 'SINGLE', 'email', 'Another', 'Hoi', "
                "'2026-11-03 08:00:00+00', null, null)",
                "insert into raw.erasures values ('A', 8, '2026-11-03 10:00:00+00')",
                "insert into raw.customers values ('A', 8, 'K8A', 'a8@x.example')",
                "insert into raw.events values "
                + ", ".join(
                    [
                        delivery(4, "A", 11, 8, "2026-11-03 13:00:00", "2026-11-03 13:01:00"),
                        delivery(5, "A", 98, 7, "2026-11-03 13:30:00", "2026-11-03 13:31:00"),  # held
                        delivery(6, "A", 11, 7, "2998-01-01 00:00:00", "2026-11-03 13:31:00"),  # future
                    ]
                ),
            ],
        )
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(ROOT), str(project.profiles_dir), project.target],
            env=project.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None and reader.stdin is not None
        try:
            assert reader.stdout.readline() == "read\n", reader.stderr.read() if reader.stderr else ""
            # the build goes ahead beside the open read (a timeout here: it waited for the reader)
            project.build(*build_vars(AFTER), timeout=240)
            reader.stdin.write("go\n")
            reader.stdin.flush()
            out, err = reader.communicate(timeout=60)
        finally:
            reader.kill()
        assert reader.returncode == 0, err
        seen = json.loads(out)
        assert seen == {
            "export_activities": [["1"]],
            "export_broadcasts": [["10"], ["30"]],
            "export_erasures": [["7"]],
            "export_held_events": [["2"]],
            "export_quarantined_events": [["3"]],
        }
        # and the build did change them all, for the next reader
        after = execute(
            project,
            [
                "select (select count(*) from analytics.export_broadcasts), "
                "(select count(*) from analytics.export_erasures), "
                "(select count(*) from analytics.export_held_events), "
                "(select count(*) from analytics.export_quarantined_events)"
            ],
        )
        assert after == [(3, 2, 2, 2)]
