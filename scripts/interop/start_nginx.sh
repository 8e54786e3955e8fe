#!/bin/sh
# Runs nginx in the foreground over TLS on 127.0.0.1:PORT, serving DIR/html; every file it writes
# (config, pid, logs, temp paths) stays inside DIR. Used by tests/interop; also handy by hand:
#   scripts/interop/start_nginx.sh /tmp/ng 8443 cert.pem key.pem   (Ctrl-C stops it)
set -eu

if [ $# -ne 4 ]; then
  echo "usage: $0 DIR PORT CERT_PEM KEY_PEM" >&2
  exit 2
fi
dir=$1
port=$2
cert=$3
key=$4

PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
if ! command -v nginx >/dev/null 2>&1; then
  echo "nginx is not installed (Debian: apt-get install nginx-light or nginx)" >&2
  exit 127
fi

mkdir -p "$dir/html" "$dir/tmp"
cat > "$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;

events {
  worker_connections 256;
}

http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  default_type application/octet-stream;
  keepalive_timeout 75s;

  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $dir/html;
  }
}
CONF

# exec: the caller's child IS nginx, so killing it leaves nothing behind.
exec nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
