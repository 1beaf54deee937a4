/*
 * version.h - the release version of both programs, and the protocol version range they speak.
 */
#ifndef CV_VERSION_H
#define CV_VERSION_H

#define CULVERT_VERSION "0.1.0"

#endif
