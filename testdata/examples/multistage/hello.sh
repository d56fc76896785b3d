#!/bin/sh
echo hello from rbuild
