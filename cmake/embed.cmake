# cmake -DIN=file -DOUT=file.c -DSYM=name -P embed.cmake
# Writes `const unsigned char SYM[]` and `const size_t SYM_len` holding IN.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\n#include <stddef.h>\n"
     "extern const unsigned char ${SYM}[];\nextern const size_t ${SYM}_len;\n"
     "const unsigned char ${SYM}[] = {\n${bytes}0};\nconst size_t ${SYM}_len = ${len};\n")
