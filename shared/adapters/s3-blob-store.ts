import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable, Transform, pipeline } from 'node:stream';
import type { BlobStore, ByteRange, PutResult } from '../ports/blob-store.js';
import { ConflictError, NotFoundError, RangeNotSatisfiableError } from '../errors.js';

const uploadPartSize = 8 * 1024 * 1024;
const uploadQueueSize = 2;
const deleteBatchSize = 1000; // the DeleteObjects limit
const maxCopyPartSize = 5 * 1024 ** 3; // the UploadPartCopy limit

/**
 * The first `limit` bytes of a stream, and an iterator over the rest (undefined when it ended
 * within the limit). One iterator throughout, so a source error between the two is held for
 * the next read rather than thrown at nobody.
 */
async function readUpTo(body: Readable, limit: number): Promise<{ head: Buffer; rest?: AsyncIterator<unknown> }> {
  const iterator = body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { head: Buffer.concat(chunks, size) };
    const buffer = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
    chunks.push(buffer);
    size += buffer.length;
    if (size >= limit) return { head: Buffer.concat(chunks, size), rest: iterator };
  }
}

async function* prepend(head: Buffer, rest: AsyncIterator<unknown>): AsyncGenerator<Buffer> {
  yield head;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value as Buffer;
}

/** BlobStore on S3 or an S3-compatible server (Ceph RGW in tests). */
export class S3BlobStore implements BlobStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, body: Readable | Buffer): Promise<PutResult> {
    if (Buffer.isBuffer(body)) {
      const put = new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        IfNoneMatch: '*',
      });
      await this.withDomainErrors(key, this.client.send(put));
      return { size: body.length };
    }

    // A stream that fits one part is sent as one PutObject, whose If-None-Match is atomic: one
    // request instead of a HEAD and a PUT. RGW may not honour If-None-Match on
    // CompleteMultipartUpload, so larger streams also rely on a HEAD check.
    if (body.destroyed) throw new Error(`the source of blob ${key} was destroyed before it was stored`);
    const { head, rest } = await readUpTo(body, uploadPartSize);
    if (!rest) return this.put(key, head);
    if (await this.exists(key)) {
      await rest.return?.();
      throw new ConflictError(`blob ${key} already exists`);
    }
    body = Readable.from(prepend(head, rest), { objectMode: false });
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        done(null, chunk);
      },
    });
    pipeline(body, counted, () => {}); // a source error destroys `counted`, which fails the upload
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: counted, IfNoneMatch: '*' },
      partSize: uploadPartSize,
      queueSize: uploadQueueSize,
      leavePartsOnError: false, // a failed multipart upload is aborted, leaving nothing behind
    });
    try {
      await this.withDomainErrors(key, upload.done());
    } catch (error) {
      counted.destroy(); // release the caller's stream, which nobody reads any more
      throw error;
    }
    return { size };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertRange(range);
    if (range && range.start === range.end) return Readable.from([]);
    const request = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined,
    });
    const response = await this.withDomainErrors(key, this.client.send(request));
    return response.Body as Readable;
  }

  async size(key: string): Promise<number> {
    const head = await this.withDomainErrors(key, this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
    return head.ContentLength ?? 0;
  }

  async copy(source: string, target: string, range?: ByteRange): Promise<PutResult> {
    if (range) assertRange(range);
    const sourceSize = await this.size(source);
    const copySource = `${this.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`;
    if (!range) {
      const copyObject = new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: copySource });
      await this.withDomainErrors(source, this.client.send(copyObject));
      return { size: sourceSize };
    }

    if (range.start === range.end) return this.put(target, Buffer.alloc(0));
    if (range.start >= sourceSize) {
      throw new RangeNotSatisfiableError(`range ${range.start}-${range.end} is past the end of ${source} (${sourceSize} bytes)`);
    }
    const end = Math.min(range.end, sourceSize);
    // Server-side range copy: a multipart upload whose parts are copied ranges of the source.
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target }));
    try {
      const parts = [];
      for (let start = range.start, partNumber = 1; start < end; start += maxCopyPartSize, partNumber++) {
        const partEnd = Math.min(start + maxCopyPartSize, end);
        const copyPart = new UploadPartCopyCommand({
          Bucket: this.bucket,
          Key: target,
          UploadId,
          PartNumber: partNumber,
          CopySource: copySource,
          CopySourceRange: `bytes=${start}-${partEnd - 1}`,
        });
        const { CopyPartResult } = await this.withDomainErrors(source, this.client.send(copyPart));
        parts.push({ PartNumber: partNumber, ETag: CopyPartResult?.ETag });
      }
      // RGW answers CompleteMultipartUpload with an ETag the SDK reads as empty: nothing here uses it.
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (error) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId })).catch(() => {}); // the original error matters more than a failed clean-up
      throw error;
    }
    return { size: end - range.start };
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += deleteBatchSize) {
      const batch = keys.slice(i, i + deleteBatchSize);
      const { Errors } = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      // Missing keys are not reported as errors by S3; anything listed here is a real failure.
      if (Errors?.length) {
        const first = Errors[0];
        throw new Error(`failed to delete ${Errors.length} blob(s), first ${first.Key}: ${first.Code} ${first.Message}`);
      }
    }
  }

  async list(prefix: string, cursor?: string): Promise<{ keys: string[]; cursor?: string }> {
    const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: cursor }));
    return {
      keys: (page.Contents ?? []).flatMap(({ Key }) => (Key === undefined ? [] : [Key])),
      cursor: page.IsTruncated ? page.NextContinuationToken : undefined,
    };
  }

  async abortIncomplete(prefix: string, before: number): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || (upload.Initiated?.getTime() ?? 0) >= before) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        removed++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return removed;
  }

  async presign(key: string, method: 'GET' | 'PUT', expiresInSeconds: number): Promise<string> {
    const command = method === 'GET' ? new GetObjectCommand({ Bucket: this.bucket, Key: key }) : new PutObjectCommand({ Bucket: this.bucket, Key: key });
    return getSignedUrl(this.client, command, { expiresIn: expiresInSeconds });
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.size(key);
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }

  /** Awaits a request about `key`, turning S3's answers into domain errors. */
  private async withDomainErrors<T>(key: string, request: Promise<T>): Promise<T> {
    try {
      return await request;
    } catch (error) {
      throw toDomainError(error, key);
    }
  }
}

function toDomainError(error: unknown, key: string): unknown {
  const name = (error as { name?: string }).name;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return new NotFoundError(`blob ${key} not found`);
  if (name === 'InvalidRange' || status === 416) return new RangeNotSatisfiableError(`range is past the end of blob ${key}`);
  // 412 from If-None-Match: '*'; 409 when AWS sees a concurrent conditional write to the same key.
  if (name === 'PreconditionFailed' || status === 412 || name === 'ConditionalRequestConflict') {
    return new ConflictError(`blob ${key} already exists`);
  }
  return error;
}

function assertRange({ start, end }: ByteRange): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new Error(`invalid byte range ${start}-${end}`);
  }
}

/**
 * An S3 client for AWS (no endpoint) or an S3-compatible server. S3-compatible servers get path-style
 * addressing and checksums only where the API requires them (RGW rejects the SDK's default streamed
 * checksums with 411 MissingContentLength).
 */
export function s3ClientFor(options: { endpoint?: string; region?: string; accessKeyId?: string; secretAccessKey?: string }): S3Client {
  const { endpoint, region = 'us-east-1', accessKeyId, secretAccessKey } = options;
  return new S3Client({
    region,
    // A connection that goes silent fails the call instead of holding the request forever.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 60_000 },
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
    ...(endpoint
      ? {
          endpoint,
          forcePathStyle: true,
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  });
}

/** Creates the bucket unless this account already owns it. */
export async function ensureBucket(client: S3Client, bucket: string): Promise<void> {
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if ((error as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw error;
  }
}
