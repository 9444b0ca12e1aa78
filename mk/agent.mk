# The real proxies the LBVM agent is tested against (Debian/Ubuntu packages):
# HAProxy, NGINX with its stream (L4) module, ModSecurity v3 for NGINX and the OWASP Core Rule Set.
# Idempotent: re-runs only when this file changes or the stamp is removed, and
# installs only what is missing. The packages' services are never started
# (the tests start their own proxies on loopback ports), so the machine's
# port 80 stays free.
PROXY_PACKAGES := haproxy nginx libnginx-mod-stream libnginx-mod-http-modsecurity modsecurity-crs
PROXIES_STAMP := $(VENV)/.proxies

.PHONY: proxies
proxies: $(PROXIES_STAMP)

$(PROXIES_STAMP): mk/agent.mk
	@mkdir -p $(VENV)
	@set -euo pipefail; \
	missing=""; \
	for pkg in $(PROXY_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "apt-get not found: install$$missing yourself (see docs/agent.md)"; exit 1; }; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  echo "installing$$missing"; \
	  policy=/usr/sbin/policy-rc.d; own_policy=""; \
	  if [ ! -e "$$policy" ]; then \
	    printf '#!/bin/sh\n# lbcp mk/agent.mk: no service starts while packages install\nexit 101\n' | $$SUDO tee "$$policy" >/dev/null; \
	    $$SUDO chmod 755 "$$policy"; own_policy=1; \
	  fi; \
	  trap '[ -z "$$own_policy" ] || $$SUDO rm -f "$$policy"' EXIT; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
	    || { $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	         $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }; \
	  if [ -d /run/systemd/system ]; then $$SUDO systemctl disable --now haproxy nginx >/dev/null 2>&1 || true; fi; \
	fi; \
	for service in haproxy nginx; do \
	  if [ -f "/run/$$service.pid" ] && kill -0 "$$(cat /run/$$service.pid)" 2>/dev/null; then \
	    echo "stopping the $$service service the package started"; $$SUDO service "$$service" stop || true; \
	  fi; \
	done
	haproxy -v | head -n 1
	nginx -v
	test -f /usr/share/modsecurity-crs/owasp-crs.load
	@touch $@

SETUP_EXTRAS += proxies
