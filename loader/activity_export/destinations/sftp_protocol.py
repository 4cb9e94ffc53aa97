"""SFTP protocol extensions paramiko does not offer: what the server announced, and its write limit.

paramiko reads the server's SSH_FXP_VERSION packet and drops the extension list. We need it to know
whether ``posix-rename@openssh.com`` (atomic replace) and ``limits@openssh.com`` (how large a write
request may be) are offered, so ``ExtendedSftpClient`` overrides paramiko's private
``_send_version`` and keeps the list. Everything here depends on paramiko internals; a paramiko
upgrade is checked against this module first.
"""

from __future__ import annotations

import struct

import paramiko

POSIX_RENAME = "posix-rename@openssh.com"
# SFTP write request size: the protocol guarantees 32 KiB; a server announcing
# limits@openssh.com (OpenSSH 8.6+) tells how much it takes, and bigger requests mean fewer
# requests and answers for paramiko to handle in Python (about 1.5x the throughput at 256 KiB).
LIMITS = "limits@openssh.com"
MIN_WRITE_SIZE = 2**15
MAX_WRITE_SIZE = 2**18


class ExtendedSftpClient(paramiko.SFTPClient):  # type: ignore[misc]  # paramiko ships no types
    """paramiko's SFTP client, also keeping the extensions the server announced."""

    server_extensions: dict[str, bytes]
    write_size: int = MIN_WRITE_SIZE

    def _send_version(self) -> int:
        from paramiko.sftp import CMD_INIT, CMD_VERSION, SFTPError

        message = paramiko.Message()
        message.add_int(3)
        self._send_packet(CMD_INIT, message)
        kind, data = self._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        self.server_extensions = _extensions(data[4:])
        version: int = struct.unpack(">I", data[:4])[0]
        return version

    @property
    def posix_rename_supported(self) -> bool:
        return POSIX_RENAME in getattr(self, "server_extensions", {})

    def announced_write_size(self) -> int:
        """The largest write request the server takes (limits@openssh.com), up to 256 KiB."""
        if LIMITS not in getattr(self, "server_extensions", {}):
            return MIN_WRITE_SIZE
        from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

        try:
            kind, reply = self._request(CMD_EXTENDED, LIMITS)
        except OSError:  # the server's answer is an error status: stay with the safe size
            return MIN_WRITE_SIZE
        if kind != CMD_EXTENDED_REPLY or reply is None:
            return MIN_WRITE_SIZE
        _max_packet, _max_read, max_write = (reply.get_int64() for _ in range(3))
        return max(MIN_WRITE_SIZE, min(max_write or MIN_WRITE_SIZE, MAX_WRITE_SIZE))


def _extensions(data: bytes) -> dict[str, bytes]:
    """The ``name, data`` string pairs that follow the version number in SSH_FXP_VERSION."""
    found: dict[str, bytes] = {}
    offset = 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        name = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
        if offset + 4 > len(data):
            break
        (length,) = struct.unpack_from(">I", data, offset)
        found[name.decode("utf-8", "replace")] = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
    return found
