/**
 * Jobs submitted to the cluster (`jray job submit`, `JobSubmissionClient`):
 * what the sidebar's Jobs section and the log panels share (status badges,
 * times, the Stop confirmation), and `JobLogPanel`, a job's log followed
 * live in a Lab main-area panel (`GET jray/api/jobs/<id>/logs?offset=N`
 * every second while the job runs, the last LOG_KEEP_CHARS kept, scrolled
 * to the end unless the reader scrolled up).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { APIError, IJob, IJobLog, JobStatus, jobPath, requestAPI } from './api';

/** How often an open log panel asks for new output while its job runs. */
const LOG_POLL_MS = 1000;
/** What a log panel keeps (and what its first read asks for): the end of a long log. */
export const LOG_KEEP_CHARS = 128 * 1024;

export function isTerminal(status: JobStatus): boolean {
  return status === 'STOPPED' || status === 'SUCCEEDED' || status === 'FAILED';
}

/** The coloured status (theme colours in style/index.css, by status). */
export function statusBadge(status: JobStatus): HTMLElement {
  const badge = document.createElement('span');
  setStatusBadge(badge, status);
  return badge;
}

export function setStatusBadge(badge: HTMLElement, status: JobStatus): void {
  badge.className = `jray-job-status jray-job-status-${status}`;
  badge.textContent = status;
  badge.dataset.status = status;
}

/** A start time as the browser's local time (with the date when not today). */
export function clock(ms: number | null): string {
  if (!ms) {
    return '-';
  }
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** How long the job ran (until `now` while it runs). */
export function duration(job: IJob, now: number): string {
  if (!job.start_time) {
    return '';
  }
  const s = Math.max(0, ((job.end_time || now) - job.start_time) / 1000);
  if (s < 60) {
    return `${s.toFixed(1)} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  }
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Ask, then POST `jray/api/jobs/<id>/stop`; null if the user cancelled, else
 * the error message ('' when it stopped). */
export async function confirmStopJob(submissionId: string, entrypoint: string): Promise<string | null> {
  const body = document.createElement('div');
  body.className = 'jray-stop-dialog jray-job-stop-dialog';
  const p1 = document.createElement('p');
  p1.textContent = `Stop the job ${submissionId}?`;
  const code = document.createElement('code');
  code.className = 'jray-job-stop-entrypoint';
  code.textContent = entrypoint;
  const p2 = document.createElement('p');
  p2.textContent =
    'Its entrypoint gets SIGTERM, then SIGKILL after a grace period; its tasks and actors ' +
    '(not detached ones) end with it. The job ends STOPPED.';
  body.append(p1, code, p2);
  const result = await showDialog({
    title: 'Stop the job?',
    body: new Widget({ node: body }),
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop job' })],
    defaultButton: 0
  });
  if (!result.button.accept) {
    return null;
  }
  try {
    await requestAPI(jobPath(submissionId, 'stop'), { method: 'POST' });
    return '';
  } catch (e) {
    return `Stopping ${submissionId} failed: ${(e as Error).message}`;
  }
}

/** One job's log, followed live: a Lab main-area panel (index.ts opens it). */
export class JobLogPanel extends Widget {
  constructor(readonly submissionId: string) {
    super();
    this.addClass('jray-job-log');
    this.node.dataset.submissionId = submissionId;
    const head = document.createElement('div');
    head.className = 'jray-job-log-head';
    this.badge = statusBadge('PENDING');
    const id = document.createElement('code');
    id.className = 'jray-job-id';
    id.textContent = submissionId;
    this.state = document.createElement('span');
    this.state.className = 'jray-job-log-state';
    this.stopButton = document.createElement('button');
    this.stopButton.className = 'jp-Button jp-mod-styled jp-mod-warn jray-button jray-job-stop';
    this.stopButton.textContent = 'Stop';
    this.stopButton.title = `Stop ${submissionId}`;
    this.stopButton.style.display = 'none';
    this.stopButton.addEventListener('click', () => void this.stop());
    head.append(this.badge, id, this.state, this.stopButton);
    this.command = document.createElement('code');
    this.command.className = 'jray-job-log-entrypoint';
    this.command.style.display = 'none';
    this.note = document.createElement('div');
    this.note.className = 'jray-job-log-note';
    this.error = document.createElement('div');
    this.error.className = 'jray-error jray-job-log-error';
    this.error.style.display = 'none';
    this.pre = document.createElement('pre');
    this.pre.className = 'jray-job-log-text';
    this.text = document.createTextNode('');
    this.pre.appendChild(this.text);
    this.node.append(head, this.command, this.note, this.error, this.pre);
    this.note.textContent = 'reading the log…';
    void this.poll();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  protected onAfterShow(): void {
    if (this.waiting) {
      window.clearTimeout(this.timer);
      void this.poll();
    }
  }

  /** The job's command (the sidebar knows it): shown, and in the Stop dialog. */
  get entrypoint(): string {
    return this.command.textContent ?? '';
  }

  set entrypoint(value: string) {
    this.command.textContent = value;
    this.command.title = value;
    this.command.style.display = value ? '' : 'none';
  }

  /** Read what came since the last read; again in LOG_POLL_MS unless the job ended. */
  async poll(): Promise<void> {
    if (this.isDisposed || this.inFlight) {
      return; // the read in flight sets the next one up
    }
    this.waiting = false;
    if (!this.isVisible && this.readOnce) {
      this.waiting = true; // a hidden tab reads again when shown
      return;
    }
    let again = true;
    this.inFlight = true;
    this.readOnce = true;
    try {
      const params = `offset=${this.offset}&max_bytes=${LOG_KEEP_CHARS}`;
      const r = await requestAPI<IJobLog>(`${jobPath(this.submissionId, 'logs')}?${params}`);
      if (this.isDisposed) {
        return;
      }
      this.failures = 0;
      this.showError('');
      this.append(r);
      this.showStatus(r.status, r.terminal);
      again = !r.terminal;
    } catch (e) {
      this.failures += 1;
      const gone = e instanceof APIError && e.status === 404;
      this.showError(gone ? `${(e as Error).message} (deleted?)` : (e as Error).message);
      again = !gone;
    } finally {
      this.inFlight = false;
    }
    if (again && !this.isDisposed) {
      this.timer = window.setTimeout(() => void this.poll(), LOG_POLL_MS * Math.min(1 + this.failures, 10));
    }
  }

  private append(r: IJobLog): void {
    const first = this.offset === 0;
    this.offset = r.offset;
    if (r.truncated) {
      this.truncated = true;
    }
    if (r.logs) {
      const pre = this.pre;
      const atEnd = first || pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      let text = this.text.data + r.logs;
      if (text.length > LOG_KEEP_CHARS) {
        const cut = text.indexOf('\n', text.length - LOG_KEEP_CHARS);
        text = text.slice(cut >= 0 ? cut + 1 : text.length - LOG_KEEP_CHARS);
        this.truncated = true;
      }
      this.text.data = text;
      if (atEnd) {
        pre.scrollTop = pre.scrollHeight;
      }
    }
    const kept = `${Math.round(LOG_KEEP_CHARS / 1024)} KiB`;
    this.note.textContent = !this.text.data
      ? 'no output yet'
      : this.truncated
        ? `showing the last ${kept} of the log (jray job logs ${this.submissionId} has it all)`
        : '';
    this.note.style.display = this.note.textContent ? '' : 'none';
  }

  private showStatus(status: JobStatus, terminal: boolean): void {
    setStatusBadge(this.badge, status);
    this.node.dataset.status = status;
    this.state.textContent = terminal ? 'ended' : isTerminal(status) ? 'ending…' : 'following';
    this.stopButton.style.display = isTerminal(status) ? 'none' : '';
    this.title.caption = `jray job ${this.submissionId}: ${status}`;
  }

  private showError(message: string): void {
    this.error.textContent = message;
    this.error.style.display = message ? '' : 'none';
  }

  private async stop(): Promise<void> {
    this.stopButton.disabled = true;
    try {
      const error = await confirmStopJob(this.submissionId, this.entrypoint);
      if (error) {
        this.showError(error);
      }
    } finally {
      this.stopButton.disabled = false;
    }
    window.clearTimeout(this.timer);
    void this.poll();
  }

  private offset = 0;
  private truncated = false;
  private failures = 0;
  private waiting = false;
  private inFlight = false;
  private readOnce = false;
  private timer = 0;
  private badge: HTMLElement;
  private state: HTMLElement;
  private stopButton: HTMLButtonElement;
  private command: HTMLElement;
  private note: HTMLElement;
  private error: HTMLElement;
  private pre: HTMLPreElement;
  private text: Text;
}
