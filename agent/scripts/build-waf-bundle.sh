#!/bin/bash
# Build the lbcp WAF bundle for Amazon Linux 2023: what AL2023's repositories lack.
#
# AL2023 packages NGINX but not ModSecurity: no libmodsecurity, no NGINX
# connector module, no OWASP Core Rule Set. This script builds them on an
# AL2023 instance of the LBVMs' architecture and packs them the way the
# bootstrap unpacks them into /opt/lbcp/waf:
#
#   lib/       libmodsecurity.so.3 (found through /etc/ld.so.conf.d/lbcp-waf.conf)
#   modules/   ngx_http_modsecurity_module.so, built against this NGINX (--with-compat)
#   crs/rules/ the Core Rule Set
#
# Every download is checked against a SHA-256 you take from the project's
# release page (or compute after checking its signature): set them first.
#
#   sudo MODSECURITY_SHA256=... CONNECTOR_SHA256=... CRS_SHA256=... NGINX_SHA256=... \
#        ./build-waf-bundle.sh lbcp-waf-al2023-x86_64.tar.gz
#
# Rebuild whenever AL2023 updates its nginx package: a dynamic module must match
# the NGINX it is loaded into (the agent's `nginx -t` refuses a mismatch).
set -euo pipefail

OUT=$(realpath -m "${1:?usage: build-waf-bundle.sh OUT.tar.gz}")
MODSECURITY_VERSION=${MODSECURITY_VERSION:-3.0.12}
CONNECTOR_VERSION=${CONNECTOR_VERSION:-1.0.3}
CRS_VERSION=${CRS_VERSION:-3.3.4}  # the version the agent's tests run (Debian's modsecurity-crs)
PREFIX=/opt/lbcp/waf

for checksum in MODSECURITY_SHA256 CONNECTOR_SHA256 CRS_SHA256 NGINX_SHA256; do
    if [ -z "${!checksum:-}" ]; then
        echo "set $checksum: the SHA-256 of the download, from its release page" >&2
        exit 2
    fi
done

dnf install -y -q gcc gcc-c++ make autoconf automake libtool pkgconf-pkg-config \
    pcre2-devel libxml2-devel libcurl-devel openssl-devel zlib-devel nginx tar gzip
NGINX_VERSION=$(nginx -v 2>&1 | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fetch() {  # fetch URL FILE SHA256
    curl -fsSL --proto '=https' --retry 3 -o "$2" "$1"
    echo "$3  $2" | sha256sum --check --quiet -
}
fetch "https://github.com/owasp-modsecurity/ModSecurity/releases/download/v$MODSECURITY_VERSION/modsecurity-v$MODSECURITY_VERSION.tar.gz" \
    modsecurity.tar.gz "$MODSECURITY_SHA256"
fetch "https://github.com/owasp-modsecurity/ModSecurity-nginx/releases/download/v$CONNECTOR_VERSION/ModSecurity-nginx-v$CONNECTOR_VERSION.tar.gz" \
    connector.tar.gz "$CONNECTOR_SHA256"
fetch "https://github.com/coreruleset/coreruleset/archive/refs/tags/v$CRS_VERSION.tar.gz" crs.tar.gz "$CRS_SHA256"
fetch "https://nginx.org/download/nginx-$NGINX_VERSION.tar.gz" nginx.tar.gz "$NGINX_SHA256"
mkdir modsecurity connector nginx crs
tar -xzf modsecurity.tar.gz --strip-components=1 -C modsecurity
tar -xzf connector.tar.gz --strip-components=1 -C connector
tar -xzf nginx.tar.gz --strip-components=1 -C nginx
tar -xzf crs.tar.gz --strip-components=1 -C crs

# libmodsecurity: only what the CRS needs (no GeoIP, no LMDB).
(cd modsecurity && ./configure --prefix="$PREFIX" --without-lmdb --without-maxmind --without-geoip --with-pcre2 \
    && make -j"$(nproc)" && make install)

# The connector, as a dynamic module for the installed NGINX.
(cd nginx && MODSECURITY_INC="$PREFIX/include" MODSECURITY_LIB="$PREFIX/lib" \
    ./configure --with-compat --add-dynamic-module=../connector && make modules)
mkdir -p "$PREFIX/modules" "$PREFIX/crs"
cp nginx/objs/ngx_http_modsecurity_module.so "$PREFIX/modules/"
cp -r crs/rules "$PREFIX/crs/"

tar -czf "$OUT" -C "$PREFIX" lib modules crs
sha256sum "$OUT"
