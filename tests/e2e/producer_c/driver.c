/*
 * A small producer on AWS's C producer SDK (amazon-kinesis-video-streams-producer-c v1.6.0, Apache-2.0,
 * linked statically), for openkvs's end-to-end tests (tests/e2e/test_producer_c.py). Built by
 * scripts/build-kvs-producer-c.sh.
 *
 *   kvs-producer-c-driver ENDPOINT STREAM FRAMES MODE
 *
 * ENDPOINT  control-plane URL handed to the SDK verbatim (http://127.0.0.1:PORT)
 * STREAM    stream name (the SDK creates it when DescribeStream says it does not exist)
 * FRAMES    a frame list written by the test from an MKV fixture (format below)
 * MODE      fast (every frame as fast as putKinesisVideoFrame takes it) or realtime (paced by timestamps)
 *
 * Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (static), region AWS_DEFAULT_REGION (us-east-1).
 * The SDK's log goes to stderr (level AWS_KVS_LOG_LEVEL, INFO when unset). stdout carries one JSON object
 * per line: "ack" (from the SDK's FragmentAckReceived callback), "stream_error", "dropped_frame",
 * "dropped_fragment", "put_error", "put_done" and last "stop" with stopKinesisVideoStreamSync's status.
 * Exit code 0 only when that status is STATUS_SUCCESS.
 *
 * Frame list (little endian):
 *   "OKVSFRM1", u32 track count,
 *   per track:  u32 track number, u32 track type (1 video, 2 audio), u32 len + codec id, u32 len + CPD,
 *   per frame until EOF: u32 track number, u32 flags (1 = key frame), u64 pts (100 ns, from 0),
 *                        u64 duration (100 ns), u32 size, frame bytes (AVCC H.264 / raw AAC, as in MKV).
 *
 * Everything else is the SDK's default: createRealtimeAudioVideoStreamInfoProviderWithCodecs (H.264 + AAC,
 * absolute fragment times, key-frame fragmentation, acks, multi-track PTS ordering), the default device info
 * and createDefaultCallbacksProviderWithAwsCredentialsAndEndpointOverride. One change: no NAL adaptation,
 * since the frames are already AVCC (length-prefixed) with an avcC CPD, as they come out of MKV.
 */
#include <com/amazonaws/kinesis/video/cproducer/Include.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETENTION        (2 * HUNDREDS_OF_NANOS_IN_AN_HOUR)
#define BUFFER_DURATION  (120 * HUNDREDS_OF_NANOS_IN_A_SECOND)
#define MAX_TRACKS       2

static pthread_mutex_t gOutLock = PTHREAD_MUTEX_INITIALIZER;

static void out(const char* fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&gOutLock);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&gOutLock);
}

/* The SDK's log format (same metadata as its defaultLogPrint), on stderr instead of stdout. */
static VOID stderrLogPrint(UINT32 level, const PCHAR tag, const PCHAR fmt, ...)
{
    CHAR line[MAX_LOG_FORMAT_LENGTH + 1];
    UINT32 logLevel = GET_LOGGER_LOG_LEVEL();
    va_list ap;
    UNUSED_PARAM(tag);
    if (logLevel == LOG_LEVEL_SILENT || level < logLevel) {
        return;
    }
    addLogMetadata(line, (UINT32) ARRAY_SIZE(line), (PCHAR) fmt, level);
    va_start(ap, fmt);
    vfprintf(stderr, line, ap);
    va_end(ap);
}

static const char* ackTypeName(FRAGMENT_ACK_TYPE t)
{
    switch (t) {
        case FRAGMENT_ACK_TYPE_BUFFERING:
            return "BUFFERING";
        case FRAGMENT_ACK_TYPE_RECEIVED:
            return "RECEIVED";
        case FRAGMENT_ACK_TYPE_PERSISTED:
            return "PERSISTED";
        case FRAGMENT_ACK_TYPE_ERROR:
            return "ERROR";
        case FRAGMENT_ACK_TYPE_IDLE:
            return "IDLE";
        default:
            return "UNDEFINED";
    }
}

static STATUS onFragmentAck(UINT64 customData, STREAM_HANDLE streamHandle, UPLOAD_HANDLE uploadHandle, PFragmentAck pAck)
{
    UNUSED_PARAM(customData);
    UNUSED_PARAM(streamHandle);
    out("{\"event\":\"ack\",\"type\":\"%s\",\"timecode\":%" PRIu64 ",\"fragment_number\":\"%s\",\"upload_handle\":%" PRIu64
        ",\"result\":%u}",
        ackTypeName(pAck->ackType), pAck->timestamp, pAck->sequenceNumber, (UINT64) uploadHandle, (UINT32) pAck->result);
    return STATUS_SUCCESS;
}

static STATUS onStreamError(UINT64 customData, STREAM_HANDLE streamHandle, UPLOAD_HANDLE uploadHandle, UINT64 timecode, STATUS status)
{
    UNUSED_PARAM(customData);
    UNUSED_PARAM(streamHandle);
    out("{\"event\":\"stream_error\",\"upload_handle\":%" PRIu64 ",\"timecode\":%" PRIu64 ",\"status\":\"0x%08x\"}", (UINT64) uploadHandle,
        timecode, status);
    return STATUS_SUCCESS;
}

static STATUS onDroppedFrame(UINT64 customData, STREAM_HANDLE streamHandle, UINT64 timecode)
{
    UNUSED_PARAM(customData);
    UNUSED_PARAM(streamHandle);
    out("{\"event\":\"dropped_frame\",\"timecode\":%" PRIu64 "}", timecode);
    return STATUS_SUCCESS;
}

static STATUS onDroppedFragment(UINT64 customData, STREAM_HANDLE streamHandle, UINT64 timecode)
{
    UNUSED_PARAM(customData);
    UNUSED_PARAM(streamHandle);
    out("{\"event\":\"dropped_fragment\",\"timecode\":%" PRIu64 "}", timecode);
    return STATUS_SUCCESS;
}

/* -- the frame list ---------------------------------------------------------------------------------- */

typedef struct {
    const BYTE* p;
    const BYTE* end;
} Reader;

static int take(Reader* r, void* dst, size_t n)
{
    if ((size_t) (r->end - r->p) < n) {
        return 0;
    }
    if (dst != NULL) {
        memcpy(dst, r->p, n);
    }
    r->p += n;
    return 1;
}

static int u32(Reader* r, UINT32* v)
{
    BYTE b[4];
    if (!take(r, b, 4)) {
        return 0;
    }
    *v = (UINT32) b[0] | (UINT32) b[1] << 8 | (UINT32) b[2] << 16 | (UINT32) b[3] << 24;
    return 1;
}

static int u64(Reader* r, UINT64* v)
{
    UINT32 lo, hi;
    if (!u32(r, &lo) || !u32(r, &hi)) {
        return 0;
    }
    *v = (UINT64) hi << 32 | lo;
    return 1;
}

static BYTE* readWholeFile(const char* path, size_t* size)
{
    FILE* f = fopen(path, "rb");
    BYTE* buf = NULL;
    long n;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        if (f != NULL) {
            fclose(f);
        }
        return NULL;
    }
    buf = (BYTE*) malloc((size_t) n + 1);
    if (buf != NULL && fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t) n;
    return buf;
}

int main(int argc, char** argv)
{
    PDeviceInfo pDeviceInfo = NULL;
    PStreamInfo pStreamInfo = NULL;
    PClientCallbacks pClientCallbacks = NULL;
    PStreamCallbacks pStreamCallbacks = NULL;
    CLIENT_HANDLE clientHandle = INVALID_CLIENT_HANDLE_VALUE;
    STREAM_HANDLE streamHandle = INVALID_STREAM_HANDLE_VALUE;
    STATUS retStatus = STATUS_SUCCESS, stopStatus = STATUS_INVALID_OPERATION, status;
    PCHAR accessKey, secretKey, sessionToken, region;
    const char *endpoint, *streamName, *framesPath, *mode;
    BYTE* data = NULL;
    size_t dataSize = 0;
    Reader r;
    UINT32 trackCount = 0, i, j, len, flags, trackNumber;
    UINT32 trackTypes[MAX_TRACKS] = {0}, trackNumbers[MAX_TRACKS] = {0};
    const BYTE* cpd[MAX_TRACKS] = {NULL};
    UINT32 cpdSize[MAX_TRACKS] = {0};
    BOOL realtime, stopped = FALSE;
    UINT64 base, pts, duration, now, frames = 0, putErrors = 0, bytes = 0;
    Frame frame;
    PTrackInfo pTrack;
    const BYTE* framesStart;

    if (argc != 5 || (strcmp(argv[4], "fast") != 0 && strcmp(argv[4], "realtime") != 0)) {
        fprintf(stderr, "usage: %s ENDPOINT STREAM FRAMES fast|realtime\n", argv[0]);
        return 2;
    }
    endpoint = argv[1];
    streamName = argv[2];
    framesPath = argv[3];
    mode = argv[4];
    realtime = strcmp(mode, "realtime") == 0;

    accessKey = getenv("AWS_ACCESS_KEY_ID");
    secretKey = getenv("AWS_SECRET_ACCESS_KEY");
    sessionToken = getenv("AWS_SESSION_TOKEN");
    region = getenv("AWS_DEFAULT_REGION");
    if (region == NULL || region[0] == '\0') {
        region = (PCHAR) DEFAULT_AWS_REGION;
    }
    if (accessKey == NULL || secretKey == NULL) {
        fprintf(stderr, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set\n");
        return 2;
    }

    /* -- the frame list -- */
    data = readWholeFile(framesPath, &dataSize);
    if (data == NULL) {
        fprintf(stderr, "cannot read %s\n", framesPath);
        return 2;
    }
    r.p = data;
    r.end = data + dataSize;
    if (!take(&r, NULL, 8) || memcmp(data, "OKVSFRM1", 8) != 0 || !u32(&r, &trackCount) || trackCount == 0 || trackCount > MAX_TRACKS) {
        fprintf(stderr, "%s: not a frame list\n", framesPath);
        return 2;
    }
    for (i = 0; i < trackCount; i++) {
        if (!u32(&r, &trackNumbers[i]) || !u32(&r, &trackTypes[i]) || !u32(&r, &len) || !take(&r, NULL, len) || !u32(&r, &cpdSize[i])) {
            fprintf(stderr, "%s: bad track header\n", framesPath);
            return 2;
        }
        cpd[i] = r.p;
        if (!take(&r, NULL, cpdSize[i])) {
            fprintf(stderr, "%s: bad CPD\n", framesPath);
            return 2;
        }
    }
    framesStart = r.p;

    /* -- the SDK, with its defaults -- */
    CHK_STATUS(createDefaultDeviceInfo(&pDeviceInfo));
    if (getenv(DEBUG_LOG_LEVEL_ENV_VAR) == NULL) {
        pDeviceInfo->clientInfo.loggerLogLevel = LOG_LEVEL_INFO;
    }

    if (trackCount == 2) {
        CHK_STATUS(createRealtimeAudioVideoStreamInfoProviderWithCodecs((PCHAR) streamName, RETENTION, BUFFER_DURATION, VIDEO_CODEC_ID_H264,
                                                                        AUDIO_CODEC_ID_AAC, &pStreamInfo));
    } else if (trackTypes[0] == 1) {
        CHK_STATUS(createRealtimeVideoStreamInfoProviderWithCodecs((PCHAR) streamName, RETENTION, BUFFER_DURATION, VIDEO_CODEC_ID_H264, &pStreamInfo));
    } else {
        CHK_STATUS(createRealtimeAudioStreamInfoProviderWithCodecs((PCHAR) streamName, RETENTION, BUFFER_DURATION, AUDIO_CODEC_ID_AAC, &pStreamInfo));
    }
    /* The frames come from MKV: AVCC NALs and an avcC CPD already, nothing to convert from Annex-B. */
    pStreamInfo->streamCaps.nalAdaptationFlags = NAL_ADAPTATION_FLAG_NONE;
    for (i = 0; i < pStreamInfo->streamCaps.trackInfoCount; i++) {
        pTrack = &pStreamInfo->streamCaps.trackInfoList[i];
        for (j = 0; j < trackCount; j++) {
            /* MKV track types: 1 video, 2 audio (the SDK's MKV_TRACK_INFO_TYPE_VIDEO / _AUDIO) */
            if (trackTypes[j] == (UINT32) pTrack->trackType) {
                pTrack->codecPrivateData = (PBYTE) cpd[j];
                pTrack->codecPrivateDataSize = cpdSize[j];
                trackNumbers[j] |= (UINT32) pTrack->trackId << 16; /* file track -> SDK track id */
            }
        }
    }

    CHK_STATUS(createDefaultCallbacksProviderWithAwsCredentialsAndEndpointOverride(accessKey, secretKey, sessionToken, MAX_UINT64, region, NULL,
                                                                                   NULL, NULL, (PCHAR) endpoint, &pClientCallbacks));
    pClientCallbacks->logPrintFn = stderrLogPrint;
    CHK_STATUS(createStreamCallbacks(&pStreamCallbacks));
    pStreamCallbacks->fragmentAckReceivedFn = onFragmentAck;
    pStreamCallbacks->streamErrorReportFn = onStreamError;
    pStreamCallbacks->droppedFrameReportFn = onDroppedFrame;
    pStreamCallbacks->droppedFragmentReportFn = onDroppedFragment;
    CHK_STATUS(addStreamCallbacks(pClientCallbacks, pStreamCallbacks));

    CHK_STATUS(createKinesisVideoClient(pDeviceInfo, pClientCallbacks, &clientHandle));
    CHK_STATUS(createKinesisVideoStreamSync(clientHandle, pStreamInfo, &streamHandle));

    /* -- the frames -- */
    r.p = framesStart;
    base = GETTIME();
    while (r.p < r.end) {
        UINT32 size;
        if (!u32(&r, &trackNumber) || !u32(&r, &flags) || !u64(&r, &pts) || !u64(&r, &duration) || !u32(&r, &size) ||
            (size_t) (r.end - r.p) < size) {
            fprintf(stderr, "%s: truncated frame record\n", framesPath);
            CHK(FALSE, STATUS_INVALID_ARG);
        }
        MEMSET(&frame, 0x00, SIZEOF(Frame));
        frame.version = FRAME_CURRENT_VERSION;
        frame.index = (UINT32) frames;
        frame.flags = (flags & 1) ? FRAME_FLAG_KEY_FRAME : FRAME_FLAG_NONE;
        frame.presentationTs = base + pts;
        frame.decodingTs = frame.presentationTs;
        frame.duration = duration;
        frame.size = size;
        frame.frameData = (PBYTE) r.p;
        frame.trackId = 0;
        for (j = 0; j < trackCount; j++) {
            if ((trackNumbers[j] & 0xFFFF) == trackNumber) {
                frame.trackId = trackNumbers[j] >> 16;
            }
        }
        r.p += size;
        if (frame.trackId == 0) {
            fprintf(stderr, "frame of unknown track %u\n", trackNumber);
            CHK(FALSE, STATUS_INVALID_ARG);
        }
        if (realtime && (now = GETTIME()) < frame.presentationTs) {
            THREAD_SLEEP(frame.presentationTs - now);
        }
        status = putKinesisVideoFrame(streamHandle, &frame);
        if (STATUS_FAILED(status)) {
            putErrors++;
            out("{\"event\":\"put_error\",\"index\":%" PRIu64 ",\"track\":%u,\"pts\":%" PRIu64 ",\"status\":\"0x%08x\"}", frames, frame.trackId,
                pts, status);
        }
        frames++;
        bytes += size;
    }
    out("{\"event\":\"put_done\",\"frames\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"put_errors\":%" PRIu64 ",\"seconds\":%.3f}", frames, bytes,
        putErrors, (DOUBLE) (GETTIME() - base) / HUNDREDS_OF_NANOS_IN_A_SECOND);

    now = GETTIME();
    stopStatus = stopKinesisVideoStreamSync(streamHandle);
    stopped = TRUE;
    out("{\"event\":\"stop\",\"status\":\"0x%08x\",\"seconds\":%.3f}", stopStatus, (DOUBLE) (GETTIME() - now) / HUNDREDS_OF_NANOS_IN_A_SECOND);

CleanUp:
    if (STATUS_FAILED(retStatus)) {
        out("{\"event\":\"failed\",\"status\":\"0x%08x\"}", retStatus);
    }
    if (!stopped) {
        out("{\"event\":\"stop\",\"status\":\"0x%08x\",\"seconds\":0}", stopStatus);
    }
    freeKinesisVideoStream(&streamHandle);
    freeKinesisVideoClient(&clientHandle);
    freeCallbacksProvider(&pClientCallbacks);
    freeStreamInfoProvider(&pStreamInfo);
    freeDeviceInfo(&pDeviceInfo);
    free(data);
    return (stopped && stopStatus == STATUS_SUCCESS) ? 0 : 1;
}
