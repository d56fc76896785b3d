#!/bin/sh
# First start (no marker in the data folder): the server started alone on its socket,
# root given MYSQL_ROOT_PASSWORD from anywhere, then the server as asked.
set -e
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [ "$1" = mysqld ] && [ ! -e /var/lib/mysql/.rbuild-example-initialized ]; then
  : "${MYSQL_ROOT_PASSWORD:?set MYSQL_ROOT_PASSWORD}"
  mysqld --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb --socket=/run/mysqld/init.sock -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "mysqld did not start" >&2; exit 1; }
    sleep 1
  done
  mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
  touch /var/lib/mysql/.rbuild-example-initialized
  echo "initialized; the root password is set"
fi
exec "$@"
