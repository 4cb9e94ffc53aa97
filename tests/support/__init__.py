"""What the tests (and the benchmarks in bench/) share: plain helpers, no tests and no fixtures.

- ``project``: the repository, a dbt target with an environment of its own, and running
  ``activity-export`` and ``dbt`` as a user would;
- ``postgres``: the PostgreSQL server from the PG* variables, and databases made and dropped there;
- ``sshd``: a real OpenSSH sshd on loopback with chrooted accounts, and a proxy that cuts;
- ``sftp``: the loader's SFTP destination pointed at an account of that sshd;
- ``tenants``: tenants.yml files, the tenants in them, and the nightly run against them;
- ``golden``: the literal export relations behind the golden files in tests/golden/;
- ``pgp``: the receivers' OpenPGP keys, made with gpg;
- ``markers``: marking each test folder's tests with what they need.

The ``conftest.py`` files hand these out as fixtures; test modules import them from here, never
from ``conftest`` or from one another.
"""
