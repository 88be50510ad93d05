import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedEntry {
  readonly Source: string;
  readonly DetailType: string;
  readonly Detail: string;
  readonly EventBusName: string;
  readonly Time?: number;
}

/**
 * An EventBridge PutEvents endpoint that keeps what it accepts. No independent EventBridge
 * implementation installs offline (moto needs PyPI), so this checks the request against the
 * API's documented contract instead (JSON 1.1, the target header, a SigV4 signature, 1 to 10
 * entries, 256 KiB, each entry's required fields) and answers as the API does, including
 * refused entries when a test asks for them.
 */
export class EventBridgeRecorder {
  readonly accepted: RecordedEntry[] = [];
  readonly requests: number[] = [];
  /** Entries to refuse, by their index among all entries received (0-based), each once. */
  readonly refuse = new Set<number>();
  private received = 0;
  private server?: Server;

  /** Entries received so far, accepted or not. */
  get receivedCount(): number {
    return this.received;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const fail = (status: number, type: string, message: string) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ __type: type, message }));
        };
        if (req.headers['x-amz-target'] !== 'AWSEvents.PutEvents') return fail(400, 'UnknownOperationException', String(req.headers['x-amz-target']));
        if (!String(req.headers['content-type']).startsWith('application/x-amz-json-1.1')) return fail(400, 'SerializationException', 'content type');
        if (!String(req.headers.authorization).startsWith('AWS4-HMAC-SHA256 ')) return fail(403, 'MissingAuthenticationTokenException', 'unsigned');
        const body = Buffer.concat(chunks);
        const { Entries: entries } = JSON.parse(body.toString('utf8')) as { Entries?: RecordedEntry[] };
        if (!Array.isArray(entries) || entries.length < 1 || entries.length > 10) return fail(400, 'ValidationException', `${entries?.length} entries`);
        if (body.length > 256 * 1024 + 1024) return fail(400, 'ValidationException', 'request too large');
        this.requests.push(entries.length);
        const answers = entries.map((entry) => {
          const index = this.received++;
          if (!entry.Source || !entry.DetailType || !entry.EventBusName || typeof JSON.parse(entry.Detail) !== 'object') return { ErrorCode: 'MalformedDetail', ErrorMessage: 'missing field' };
          if (this.refuse.delete(index)) return { ErrorCode: 'ThrottlingException', ErrorMessage: 'refused by the test' };
          this.accepted.push(entry);
          return { EventId: randomUUID() };
        });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ FailedEntryCount: answers.filter((a) => 'ErrorCode' in a).length, Entries: answers }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
