echo data > one
ln one two
mkdir d && ln one d/three
echo other > four
