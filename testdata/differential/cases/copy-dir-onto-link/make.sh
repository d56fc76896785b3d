# A directory of the context where the image has a link: BuildKit refuses ("cannot copy
# to non-directory").
mkdir -p ctx/link && echo more > ctx/link/more
