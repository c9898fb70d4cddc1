# Shared by compare.sh and idle-memory.sh (sourced): installing the peers and configuring HAProxy and nginx the
# same way in both. Each function writes a configuration; the caller starts the server.

# Installs, from Debian, what is missing of: stunnel4 (with "stunnel" as an argument), haproxy, nginx with its stream
# module, gcc, python3, openssl.
install_peers() {
    local need=()
    if [ "${1:-}" = stunnel ]; then
        command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || need+=(stunnel4)
    fi
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
    { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } && [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] \
        || need+=(nginx-light libnginx-mod-stream)
    command -v cc >/dev/null 2>&1 || need+=(gcc)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    if [ "${#need[@]}" -gt 0 ]; then
        echo "installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
        pkill -x nginx 2>/dev/null || true   # the package starts one on port 80 where it can
    fi
    PATH="$PATH:/usr/sbin"
}

# haproxy_config FILE PORT BACKEND_PORT PEM CA MAXCONN TIMEOUT: 2 threads, TCP mode, TLS 1.3 only, client
# certificate required against CA.
haproxy_config() {
    cat > "$1" <<CONF
global
    nbthread 2
    maxconn $6
defaults
    mode tcp
    timeout connect 5s
    timeout client $7
    timeout server $7
frontend tls
    bind 127.0.0.1:$2 ssl crt $4 ca-file $5 verify required ssl-min-ver TLSv1.3
    default_backend echo
backend echo
    server echo 127.0.0.1:$3
CONF
}

# nginx_config FILE DIR PORT BACKEND_PORT CERT KEY CA CONNECTIONS TIMEOUT: the stream module, 2 workers, TLS 1.3
# only, client certificate required against CA; pid and error log in DIR.
nginx_config() {
    mkdir -p "$2"
    cat > "$1" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
daemon off;
pid $2/nginx.pid;
error_log $2/error.log;
worker_rlimit_nofile $(( $8 * 2 + 1000 ));
events { worker_connections $(( $8 * 2 + 500 )); }
stream {
    server {
        listen 127.0.0.1:$3 ssl;
        ssl_certificate $5;
        ssl_certificate_key $6;
        ssl_client_certificate $7;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        proxy_timeout $9;
        proxy_pass 127.0.0.1:$4;
    }
}
CONF
}
