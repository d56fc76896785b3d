mkdir -p empty tree/a/b/c tree/d
chmod 0750 tree/d
