"""A TLS server whose libssl lives in its own root filesystem, as in a container.

The server is `openssl s_server -WWW` chrooted into a directory holding copies of the openssl
binary and its libraries: its libssl.so.3 is another file (another inode) than the host's, and
the path /proc/PID/maps shows for it names the host's copy, which the server never runs. The
uprobes only fire if the auditor attached them to the server's own file, so a line per request
proves the library was found inside the server's root.
"""

import os
import shutil
import subprocess

from conftest import SServer, curl, finish, require


def _copy_with_libraries(binary: str, root: str):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    files = [binary] + [tok for tok in out.split() if tok.startswith("/")]
    for f in files:
        dest = root + f
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(f), dest)  # a copy: a new inode


class ChrootSServer(SServer):
    name = "chrooted-openssl-s_server"

    def start(self):
        root = self.workdir / "rootfs"
        _copy_with_libraries(shutil.which("openssl"), str(root))
        (root / "tls").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.tls.cert, root / "tls" / "cert.pem")
        shutil.copy(self.tls.key, root / "tls" / "key.pem")
        (root / "hello.txt").write_text("hello from the container\n")
        self.root = root
        self.port = __import__("conftest").free_port()
        self.log_files = [self.workdir / "s_server.log"]
        self._log = open(self.workdir / "s_server.log", "wb")
        # chroot(1) changes to the new root, where -WWW serves hello.txt from.
        self.proc = subprocess.Popen(
            ["chroot", str(root), "/usr/bin/openssl", "s_server", "-accept",
             f"127.0.0.1:{self.port}", "-cert", "/tls/cert.pem", "-key", "/tls/key.pem", "-WWW",
             "-quiet", "-naccept", "1000"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.wait_accepting()
        return self


def test_library_inside_the_servers_own_root(tmp_path, tls_material, start_auditor):
    require(shutil.which("chroot") and shutil.which("ldd"), "chroot and ldd are needed")
    server = ChrootSServer(tmp_path / "chroot", tls_material)
    server.workdir.mkdir(parents=True)
    try:
        server.start()
        host_libssl = os.stat("/usr/lib/x86_64-linux-gnu/libssl.so.3")
        own = [line.split()[-1] for line in open(f"/proc/{server.pid}/maps")
               if "libssl.so" in line]
        assert own, "the chrooted server maps no libssl"
        inode = int(next(line.split()[4] for line in open(f"/proc/{server.pid}/maps")
                         if "libssl.so" in line))
        assert inode != host_libssl.st_ino, "test set-up: the server runs the host's libssl"

        auditor = start_auditor(pids=[server.pid])
        sent = curl(server, ["/hello.txt"]) + curl(server, ["/hello.txt?again=1&x=2"])
        assert all(s.code == 200 for s in sent), [(s.uri, s.code) for s in sent]
        finish(auditor, sent, [server]).check_all()
    finally:
        server.stop()
