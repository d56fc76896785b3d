mkdir modedir empty && echo y > modedir/y && chmod 0750 modedir empty
