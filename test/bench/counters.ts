import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** Requests and bytes seen by the SDK clients, counted by middleware on every call. */
export class RequestCounter {
  dynamo = 0;
  s3 = 0;
  /** Bytes the function sent to S3 in request bodies (PutObject, UploadPart). */
  s3BytesSent = 0;
  /** Bytes S3 copied server-side on the function's behalf (CopyObject, UploadPartCopy). */
  s3BytesCopied = 0;
  /** Server-side copy requests (their whole-object sizes are not visible in the request). */
  s3Copies = 0;
  readonly commands = new Map<string, number>();

  reset(): void {
    this.dynamo = this.s3 = this.s3BytesSent = this.s3BytesCopied = this.s3Copies = 0;
    this.commands.clear();
  }

  snapshot() {
    return { dynamo: this.dynamo, s3: this.s3, s3BytesSent: this.s3BytesSent, s3BytesCopied: this.s3BytesCopied, s3Copies: this.s3Copies, commands: Object.fromEntries(this.commands) };
  }

  watchDynamo(client: DynamoDBDocumentClient): void {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        this.dynamo++;
        this.count(context.commandName as string);
        return next(args);
      },
      { step: 'initialize', name: 'strataBenchDynamoCounter' },
    );
  }

  watchS3(client: S3Client): void {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        this.s3++;
        const command = context.commandName as string;
        this.count(command);
        const input = args.input as { Body?: unknown; CopySourceRange?: string };
        const body = input.Body;
        if (body instanceof Uint8Array) this.s3BytesSent += body.byteLength;
        else if (typeof body === 'string') this.s3BytesSent += Buffer.byteLength(body);
        else if (body !== undefined && (command === 'PutObjectCommand' || command === 'UploadPartCommand')) {
          // A streamed body: count what the SDK reads from it.
          const stream = body as NodeJS.ReadableStream;
          stream.on?.('data', (chunk: Buffer) => (this.s3BytesSent += chunk.length));
        }
        if (command === 'UploadPartCopyCommand' && input.CopySourceRange) {
          const [, start, end] = /bytes=(\d+)-(\d+)/.exec(input.CopySourceRange) ?? [];
          if (start !== undefined) this.s3BytesCopied += Number(end) - Number(start) + 1;
        }
        if (command === 'CopyObjectCommand' || command === 'UploadPartCopyCommand') this.s3Copies++;
        return next(args);
      },
      { step: 'initialize', name: 'strataBenchS3Counter' },
    );
  }

  private count(command: string) {
    this.commands.set(command, (this.commands.get(command) ?? 0) + 1);
  }
}
