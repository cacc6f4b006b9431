/*
 * text - small character helpers the parsers share (MIME, DSN, xtext).
 */
#ifndef MAILGW_TEXT_H
#define MAILGW_TEXT_H

/* The value of a hexadecimal digit (either case), -1 for any other byte. */
static inline int text_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
