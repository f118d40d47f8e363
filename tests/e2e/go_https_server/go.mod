module mke-audit-tap/tests/e2e/go_https_server

go 1.19
