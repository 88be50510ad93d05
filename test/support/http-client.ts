/** A server's API as the end-to-end tests call it: JSON in and out, and a container's files. */
export function clientOf(url: () => string) {
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${url()}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as any) : undefined };
  };
  /** Writes a file of a container; answers the response. */
  const put = (container: string, path: string, content: string) => fetch(`${url()}/v1/containers/${container}/fs${path}`, { method: 'PUT', body: content });
  /** A file of a container as text, or the status when it cannot be read. */
  const get = async (container: string, path: string) => {
    const response = await fetch(`${url()}/v1/containers/${container}/fs${path}`);
    return response.status === 200 ? response.text() : response.status;
  };
  return { api, put, get };
}
