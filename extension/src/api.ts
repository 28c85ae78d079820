/**
 * Client of the jray server extension's REST API (`<base>/jray/api/...`),
 * through ServerConnection so Jupyter's auth (token, XSRF cookie) applies.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IStatus {
  mode: 'start' | 'attach' | 'none';
  state: 'running' | 'stopped' | 'unreachable';
  running: boolean;
  address: string;
  owned: boolean;
  worker_nodes: string[];
  max_worker_nodes: number;
  views: { [name: string]: string };
  snippet: string;
  configured_address: string;
  error?: string;
  remote?: boolean;
  nodes_alive?: number;
  nodes_dead?: number;
  resources_total?: { [name: string]: number };
  resources_available?: { [name: string]: number };
  object_store_memory?: number;
  object_store_used?: number;
  spilled_bytes?: number;
  num_workers?: number;
}

export interface INode {
  node_id: string;
  node_ip: string;
  is_head_node: boolean;
  state: string;
  resources_total: { [name: string]: number };
  resources_available: { [name: string]: number };
  object_store_memory: number;
  object_store_used: number;
  num_workers: number;
  added_by_server: boolean;
}

export interface ITasks {
  by_state: { [state: string]: number };
}

/** A failed request: the server's message, and its HTTP status (404: no such job). */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/** A request to `jray/api/<path>`; the reply's JSON, or an APIError with the server's message. */
export async function requestAPI<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'jray', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: any = {};
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new APIError(data.message || data.reason || `HTTP ${response.status}`, response.status);
  }
  return data as T;
}

/** A worker node type of the autoscaler: its limits and the "scale to N" pin. */
export interface IAutoscalerNodeType {
  resources: { [name: string]: number };
  min_workers: number;
  max_workers: number;
  /** Pinned count (`scale_to`), null while the demand drives the type. */
  target: number | null;
  count: number;
}

export interface IAutoscalerDemand {
  /** A task's or actor's resources; a placement group's bundles. */
  shape: { [name: string]: number } | { [name: string]: number }[];
  count: number;
  infeasible?: boolean;
  kind: string;
  name?: string;
  strategy?: string;
}

export interface IAutoscalerDecision {
  time: number;
  action: string;
  node_type: string;
  count: number;
  reason: string;
}

export interface IAutoscalerFailure {
  time: number;
  node_type: string;
  message: string;
  retry_in_s: number;
  failures_in_a_row: number;
}

/** The autoscaler's published status (`jray.autoscaler.sdk.get_status()`). */
export interface IAutoscalerStatus {
  cluster_name: string;
  provider: string;
  max_workers: number;
  idle_timeout_minutes: number;
  running?: boolean;
  monitor_pid?: number;
  time: number;
  nodes: { [state: string]: { [nodeType: string]: number } };
  node_types?: { [nodeType: string]: IAutoscalerNodeType };
  scale_targets?: { [nodeType: string]: number };
  demand?: IAutoscalerDemand[];
  infeasible?: unknown[];
  backoff?: { [nodeType: string]: number };
  decisions?: IAutoscalerDecision[];
  failures?: IAutoscalerFailure[];
}

export type JobStatus = 'PENDING' | 'RUNNING' | 'STOPPED' | 'SUCCEEDED' | 'FAILED';

/** A job submitted to the cluster (`jray job submit`, `JobSubmissionClient`); times in ms since the epoch. */
export interface IJob {
  submission_id: string;
  job_id: string | null;
  status: JobStatus;
  entrypoint: string;
  message: string;
  start_time: number | null;
  end_time: number | null;
  driver_exit_code: number | null;
  metadata: { [key: string]: string };
}

/** `GET jray/api/jobs`: newest first; `now` is the server's clock (for durations). */
export interface IJobList {
  jobs: IJob[];
  address: string;
  now: number;
}

/** `GET jray/api/jobs/<id>/logs?offset=N`: the log from byte N to its end now. */
export interface IJobLog {
  logs: string;
  /** Where the next read starts. */
  offset: number;
  /** The job has ended and everything was read. */
  terminal: boolean;
  status: JobStatus;
  /** Text before `logs` was left out (only the last `max_bytes` are sent). */
  truncated: boolean;
}

/** `jray/api/jobs/<id>[/<action>]` for requestAPI. */
export function jobPath(submissionId: string, action = ''): string {
  const path = `jobs/${encodeURIComponent(submissionId)}`;
  return action ? `${path}/${action}` : path;
}
