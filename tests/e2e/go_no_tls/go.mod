module mke-audit-tap/tests/e2e/go_no_tls

go 1.19
