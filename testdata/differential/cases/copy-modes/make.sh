echo s > setuid && chmod 4755 setuid
echo g > setgid && chmod 2711 setgid
echo p > private && chmod 0600 private
echo r > readonly && chmod 0444 readonly
mkdir sticky && chmod 1777 sticky
mkdir closed && echo x > closed/x && chmod 0700 closed
