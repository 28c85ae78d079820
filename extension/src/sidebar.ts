/**
 * The "jray" left sidebar: the cluster's state, nodes and resources (polled
 * from the REST API while the panel is visible), buttons that start, stop and
 * scale the local cluster, a form that connects the server's kernels to a
 * cluster elsewhere (address + token) and a Disconnect button, the
 * autoscaler's state with a "scale to N" control per worker node type (when
 * the cluster runs one), the jobs submitted to it (status, entrypoint, start
 * and duration; Logs opens a panel that follows the log, Stop asks first),
 * links to the live views, and the init snippet.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import {
  IAutoscalerDemand,
  IAutoscalerNodeType,
  IAutoscalerStatus,
  IJob,
  IJobList,
  INode,
  IStatus,
  ITasks,
  requestAPI
} from './api';
import { clock, confirmStopJob, duration, isTerminal, setStatusBadge, statusBadge } from './jobs';

const POLL_MS = 2000;

/** What the sidebar asks the application to do (commands, in index.ts). */
export interface ISidebarActions {
  openView(name: string, url: string): void;
  insertSnippet(snippet: string): void;
  /** Follow a job's log in a main-area panel. */
  openJobLogs(submissionId: string, entrypoint: string): void;
}

/** How many jobs the Jobs section lists (newest first; `jray job list` has them all). */
const JOBS_SHOWN = 20;

/** A job's row in the Jobs section, kept across polls (a click on its buttons is never lost to a redraw). */
interface IJobRow {
  row: HTMLElement;
  badge: HTMLElement;
  id: HTMLElement;
  entrypoint: HTMLElement;
  when: HTMLElement;
  message: HTMLElement;
  logs: HTMLButtonElement;
  stop: HTMLButtonElement;
  job: IJob;
}

/** How many of the autoscaler's last decisions and failures are listed. */
const AS_RECENT = 5;

const VIEW_LABELS: { [name: string]: string } = {
  task_stream: 'Task stream',
  object_store: 'Object store',
  progress: 'Progress',
  tables: 'Tasks, actors, jobs',
  nodes: 'Nodes',
  logs: 'Logs',
  metrics: 'Metrics'
};

/** jray's one readable byte size (as the CLI, ClusterMonitor and the views:
 * jray/_private/formatting.py): binary units, one decimal, whole bytes below 1 KiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  for (const unit of units) {
    if (Math.abs(v) < 1024 || unit === 'TiB') {
      return unit === 'B' ? `${Math.round(v)} B` : `${v.toFixed(1)} ${unit}`;
    }
    v /= 1024;
  }
  return `${n} B`;
}

/** How many kernels this Jupyter server runs (each may be attached to the cluster). */
async function kernelCount(): Promise<number> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(URLExt.join(settings.baseUrl, 'api', 'kernels'), {}, settings);
  if (!response.ok) {
    return 0;
  }
  const kernels = (await response.json()) as unknown[];
  return kernels.length;
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text) {
    e.textContent = text;
  }
  return e;
}

/** `{CPU: 2, GPU: 1}` as "CPU 2, GPU 1". */
function shape(r: { [name: string]: number }): string {
  const rank = (k: string): number => (k === 'CPU' ? 0 : k === 'GPU' ? 1 : 2);
  const parts = Object.entries(r)
    .filter(([, v]) => v)
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([k, v]) => `${k} ${num(v)}`);
  return parts.length ? parts.join(', ') : 'nothing';
}

/** A pending demand: a task's/actor's resources, or a placement group's bundles. */
function demandText(d: IAutoscalerDemand): string {
  if (Array.isArray(d.shape)) {
    const bundles = d.shape.map(b => `{${shape(b)}}`).join(' + ');
    const name = d.name ? ` ${d.name}` : '';
    return `placement group${name} (${d.strategy ?? 'PACK'}): ${bundles}`;
  }
  return `${d.count} × {${shape(d.shape)}} (${d.kind})`;
}

function ago(now: number, t: number): string {
  return `${Math.max(0, Math.round(now - t))} s ago`;
}

/** The controls of one worker node type in the Autoscaler section, kept
 * across polls so a number being typed is not overwritten. */
interface IAsRow {
  row: HTMLElement;
  name: HTMLElement;
  resources: HTMLElement;
  badge: HTMLElement;
  counts: HTMLElement;
  limits: HTMLElement;
  input: HTMLInputElement;
  scale: HTMLButtonElement;
  auto: HTMLButtonElement;
  error: HTMLElement;
  edited: boolean;
}

/** A labelled bar: used out of total. */
function bar(label: string, used: number, total: number, text: string): HTMLElement {
  const row = el('div', 'jray-bar-row');
  row.dataset.resource = label;
  row.appendChild(el('span', 'jray-bar-label', label));
  const outer = el('div', 'jray-bar');
  const inner = el('div', 'jray-bar-fill');
  inner.style.width = `${total > 0 ? Math.min(100, (100 * used) / total) : 0}%`;
  outer.appendChild(inner);
  row.appendChild(outer);
  row.appendChild(el('span', 'jray-bar-text', text));
  return row;
}

export class ClusterSidebar extends Widget {
  constructor(actions: ISidebarActions) {
    super();
    this.actions = actions;
    this.id = 'jray-sidebar';
    this.addClass('jray-sidebar');
    this.title.caption = 'jray cluster';
    this.buildSkeleton();
    this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
    void this.refresh();
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  /** Poll the API once (skipped while hidden or while a poll is in flight). */
  async refresh(): Promise<void> {
    if (this.busy || this.isDisposed || (!this.isVisible && this.status)) {
      return;
    }
    this.busy = true;
    try {
      const status = await requestAPI<IStatus>('status');
      let nodes: INode[] = [];
      let tasks: ITasks | null = null;
      let autoscaler: IAutoscalerStatus | null = null;
      let jobs: IJobList | string | null = null;
      if (status.state === 'running') {
        const [n, t, a, j] = await Promise.all([
          requestAPI<{ nodes: INode[] }>('nodes'),
          requestAPI<ITasks>('tasks'),
          // A cluster without an autoscaler answers null; a failed read only hides the section.
          requestAPI<{ status: IAutoscalerStatus | null }>('autoscaler').catch(() => ({ status: null })),
          // No jobs API (or it is down): its message in the Jobs section.
          requestAPI<IJobList>('jobs').catch((e: Error) => e.message)
        ]);
        nodes = n.nodes;
        tasks = t;
        autoscaler = a.status;
        jobs = j;
      }
      this.status = status;
      this.render(status, nodes, tasks);
      this.renderAutoscaler(status.state === 'running' ? autoscaler : null);
      this.renderJobs(jobs);
      this.showError(status.error || '');
    } catch (e) {
      this.showError(`Could not reach the jray server extension: ${(e as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private buildSkeleton(): void {
    const root = this.node;
    root.appendChild(el('h2', 'jray-title', 'jray cluster'));
    this.stateLine = el('div', 'jray-state-line');
    root.appendChild(this.stateLine);
    const buttons = el('div', 'jray-buttons');
    this.startButton = this.button(buttons, 'Start', 'jray-start', () => this.post('start'));
    this.stopButton = this.button(buttons, 'Stop', 'jray-stop', () => this.confirmStop(), 'jp-mod-warn');
    this.disconnectButton = this.button(buttons, 'Disconnect', 'jray-disconnect', () => this.post('detach'));
    this.addButton = this.button(buttons, 'Add node', 'jray-add-node', () => this.addNode(), 'jp-mod-accept');
    this.cpusInput = el('input', 'jp-mod-styled jray-add-cpus');
    this.cpusInput.type = 'number';
    this.cpusInput.min = '0.5';
    this.cpusInput.step = '0.5';
    this.cpusInput.value = '1';
    this.cpusInput.title = 'CPUs of the node Add node starts';
    this.cpusInput.setAttribute('aria-label', 'CPUs of the added node');
    this.cpusLabel = el('label', 'jray-add-cpus-label');
    this.cpusLabel.appendChild(this.cpusInput);
    this.cpusLabel.appendChild(document.createTextNode(' CPU'));
    buttons.insertBefore(this.cpusLabel, this.addButton);
    this.removeButton = this.button(buttons, 'Remove node', 'jray-remove-node', () =>
      this.post('nodes', 'DELETE')
    );
    root.appendChild(buttons);
    this.buildConnectForm(root);
    this.resources = el('div', 'jray-resources');
    root.appendChild(this.resources);
    this.tasks = el('div', 'jray-tasks');
    root.appendChild(this.tasks);
    root.appendChild(el('h3', '', 'Nodes'));
    this.nodes = el('div', 'jray-nodes');
    root.appendChild(this.nodes);
    this.buildAutoscaler(root);
    this.buildJobs(root);
    root.appendChild(el('h3', '', 'Live views'));
    this.views = el('div', 'jray-views');
    root.appendChild(this.views);
    const snippet = el('div', 'jray-buttons');
    this.snippetButton = this.button(snippet, 'Insert jray.init() in notebook', 'jray-insert-init', () => {
      if (this.status) {
        this.actions.insertSnippet(this.status.snippet);
      }
      return Promise.resolve();
    });
    root.appendChild(snippet);
    this.error = el('div', 'jray-error');
    root.appendChild(this.error);
  }

  /** Address + token of a running cluster (on this machine or another): POST attach. */
  private buildConnectForm(root: HTMLElement): void {
    const form = el('form', 'jray-connect');
    form.appendChild(el('div', 'jray-connect-title', 'Connect to a cluster'));
    this.addressInput = el('input', 'jp-mod-styled jray-connect-address');
    this.addressInput.type = 'text';
    this.addressInput.placeholder = 'HOST:PORT (JRAY_ADDRESS)';
    this.addressInput.setAttribute('aria-label', 'Cluster address');
    this.addressInput.addEventListener('input', () => {
      this.addressEdited = true;
    });
    this.tokenInput = el('input', 'jp-mod-styled jray-connect-token');
    this.tokenInput.type = 'password';
    this.tokenInput.placeholder = 'token (JRAY_TOKEN)';
    this.tokenInput.autocomplete = 'off';
    this.tokenInput.setAttribute('aria-label', 'Cluster token');
    form.appendChild(this.addressInput);
    form.appendChild(this.tokenInput);
    const row = el('div', 'jray-buttons');
    this.connectButton = el('button', 'jp-Button jp-mod-styled jp-mod-accept jray-button jray-connect-button', 'Connect');
    this.connectButton.type = 'submit';
    row.appendChild(this.connectButton);
    form.appendChild(row);
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      this.connectButton.disabled = true;
      try {
        const ok = await this.post('attach', 'POST', {
          address: this.addressInput.value.trim(),
          token: this.tokenInput.value.trim()
        });
        if (ok) {
          this.tokenInput.value = '';
        }
      } finally {
        this.connectButton.disabled = false;
        await this.refresh();
      }
    });
    this.connectForm = form;
    root.appendChild(form);
  }

  private button(
    parent: HTMLElement,
    label: string,
    cls: string,
    action: () => Promise<unknown>,
    look = 'jp-mod-reject'
  ): HTMLButtonElement {
    const b = el('button', `jp-Button jp-mod-styled ${look} jray-button ${cls}`, label);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await action();
      } finally {
        b.disabled = false;
        await this.refresh();
      }
    });
    parent.appendChild(b);
    return b;
  }

  /** Stop only once the user agreed: every kernel attached loses its running work. */
  private async confirmStop(): Promise<void> {
    const address = this.status?.address ?? '';
    let kernels = 0;
    try {
      kernels = await kernelCount();
    } catch {
      kernels = 0;
    }
    const attached =
      kernels === 1 ? '1 kernel of this server is attached to it' : `${kernels} kernels of this server are attached to it`;
    const body = el('div', 'jray-stop-dialog');
    body.appendChild(el('p', '', `Stop the jray cluster at ${address}? ${attached}.`));
    body.appendChild(
      el(
        'p',
        '',
        'Their running tasks, actors and objects are lost: a jray call in them then fails with one error, ' +
          'and jray.init() connects to the cluster Start makes next.'
      )
    );
    const result = await showDialog({
      title: 'Stop the jray cluster?',
      body: new Widget({ node: body }),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop cluster' })],
      defaultButton: 0
    });
    if (result.button.accept) {
      await this.post('stop');
    }
  }

  /** POST nodes with the CPUs chosen next to the button. */
  private async addNode(): Promise<void> {
    const cpus = Number(this.cpusInput.value.trim());
    if (!this.cpusInput.value.trim() || !(cpus > 0)) {
      this.actionError = 'Add node: enter the CPUs of the node (a number above 0)';
      this.showError('');
      return;
    }
    await this.post('nodes', 'POST', { num_cpus: cpus });
  }

  /** A request the user asked for; its error stays shown until the next one. */
  private async post(path: string, method = 'POST', body?: unknown): Promise<boolean> {
    this.actionError = '';
    this.showError('');
    this.stateLine.textContent = 'working…';
    try {
      const init: RequestInit = { method };
      if (body !== undefined) {
        init.body = JSON.stringify(body);
      }
      await requestAPI(path, init);
      return true;
    } catch (e) {
      this.actionError = (e as Error).message;
      this.showError('');
      return false;
    }
  }

  private showError(message: string): void {
    const text = [this.actionError, message].filter(m => m).join('\n');
    this.error.textContent = text;
    this.error.style.display = text ? '' : 'none';
  }

  private render(s: IStatus, nodes: INode[], tasks: ITasks | null): void {
    this.node.dataset.state = s.state;
    this.stateLine.textContent = '';
    const state = el('span', `jray-state jray-state-${s.state}`, s.state);
    this.stateLine.appendChild(state);
    if (s.address) {
      const how = s.owned
        ? 'started by this server'
        : s.remote
          ? 'attached; no node here: kernels connect as clients'
          : 'attached';
      this.stateLine.appendChild(document.createTextNode(` at ${s.address} (${how})`));
    } else {
      this.stateLine.appendChild(document.createTextNode(` (mode: ${s.mode})`));
    }
    const running = s.state === 'running';
    this.startButton.style.display = s.running ? 'none' : '';
    this.stopButton.style.display = s.running && s.owned ? '' : 'none';
    this.disconnectButton.style.display = s.running && !s.owned ? '' : 'none';
    this.connectForm.style.display = s.running ? 'none' : '';
    if (!this.addressEdited && !this.addressInput.value && s.configured_address) {
      this.addressInput.value = s.configured_address;
    }
    this.addButton.style.display = s.running ? '' : 'none';
    this.cpusLabel.style.display = s.running ? '' : 'none';
    this.addButton.disabled = s.worker_nodes.length >= s.max_worker_nodes;
    this.removeButton.style.display = s.worker_nodes.length ? '' : 'none';
    this.snippetButton.disabled = !running;

    this.resources.textContent = '';
    if (running && s.resources_total && s.resources_available) {
      const total = s.resources_total;
      const avail = s.resources_available;
      const names = Object.keys(total).filter(k => k !== 'memory' && !k.startsWith('node:'));
      names.sort((a, b) => (a === 'CPU' ? -1 : b === 'CPU' ? 1 : a.localeCompare(b)));
      for (const k of names) {
        const used = total[k] - (avail[k] ?? 0);
        this.resources.appendChild(bar(k, used, total[k], `${num(used)} / ${num(total[k])}`));
      }
      const store = s.object_store_memory ?? 0;
      const storeUsed = s.object_store_used ?? 0;
      this.resources.appendChild(bar('store', storeUsed, store, `${bytes(storeUsed)} / ${bytes(store)}`));
      const spilled = s.spilled_bytes ? `, ${bytes(s.spilled_bytes)} spilled` : '';
      this.resources.appendChild(
        el('div', 'jray-summary', `${plural(s.nodes_alive ?? 0, 'node')}, ${plural(s.num_workers ?? 0, 'worker')}${spilled}`)
      );
    }

    this.tasks.textContent = '';
    if (tasks) {
      const parts = Object.entries(tasks.by_state).map(([k, v]) => `${k.toLowerCase()} ${v}`);
      this.tasks.textContent = parts.length ? `Tasks: ${parts.join(', ')}` : 'Tasks: none yet';
    }

    this.nodes.textContent = '';
    for (const n of nodes) {
      const row = el('div', `jray-node jray-node-${n.state.toLowerCase()}`);
      row.dataset.nodeId = n.node_id;
      const head = el('div', 'jray-node-head');
      const kind = n.is_head_node ? 'head' : n.added_by_server ? 'worker (added here)' : 'worker';
      head.appendChild(el('code', '', n.node_id.slice(0, 12)));
      head.appendChild(document.createTextNode(` ${n.node_ip} · ${kind} · ${n.state.toLowerCase()}`));
      if (n.added_by_server && n.state === 'ALIVE') {
        const rm = el('button', 'jray-node-remove', '✕');
        rm.title = 'Stop this node';
        rm.addEventListener('click', async () => {
          rm.disabled = true;
          await this.post(`nodes/${n.node_id}`, 'DELETE');
          await this.refresh();
        });
        head.appendChild(rm);
      }
      row.appendChild(head);
      if (n.state === 'ALIVE') {
        const cpu = n.resources_total.CPU ?? 0;
        const cpuUsed = cpu - (n.resources_available.CPU ?? 0);
        row.appendChild(bar('CPU', cpuUsed, cpu, `${num(cpuUsed)} / ${num(cpu)}`));
        const gpu = n.resources_total.GPU ?? 0;
        if (gpu) {
          const gpuUsed = gpu - (n.resources_available.GPU ?? 0);
          row.appendChild(bar('GPU', gpuUsed, gpu, `${num(gpuUsed)} / ${num(gpu)}`));
        }
        row.appendChild(
          bar(
            'store',
            n.object_store_used,
            n.object_store_memory,
            `${bytes(n.object_store_used)} / ${bytes(n.object_store_memory)}`
          )
        );
        row.appendChild(el('div', 'jray-summary', plural(n.num_workers, 'worker')));
      }
      this.nodes.appendChild(row);
    }

    this.views.textContent = '';
    for (const [name, url] of Object.entries(s.views)) {
      const a = el('a', `jray-view-link jray-view-${name}`, VIEW_LABELS[name] ?? name);
      a.href = url;
      a.addEventListener('click', ev => {
        ev.preventDefault();
        this.actions.openView(name, url);
      });
      this.views.appendChild(a);
    }
  }

  /** The Autoscaler section, hidden until a poll finds an autoscaler's status. */
  private buildAutoscaler(root: HTMLElement): void {
    const section = el('div', 'jray-autoscaler');
    section.style.display = 'none';
    section.appendChild(el('h3', '', 'Autoscaler'));
    this.asHeader = el('div', 'jray-as-header');
    section.appendChild(this.asHeader);
    this.asTypes = el('div', 'jray-as-types');
    section.appendChild(this.asTypes);
    section.appendChild(el('div', 'jray-as-subtitle', 'Pending demand'));
    this.asDemand = el('div', 'jray-as-demand');
    section.appendChild(this.asDemand);
    section.appendChild(el('div', 'jray-as-subtitle', 'Recent decisions'));
    this.asDecisions = el('div', 'jray-as-decisions');
    section.appendChild(this.asDecisions);
    this.asFailuresTitle = el('div', 'jray-as-subtitle', 'Launch failures');
    section.appendChild(this.asFailuresTitle);
    this.asFailures = el('div', 'jray-as-failures');
    section.appendChild(this.asFailures);
    this.autoscaler = section;
    root.appendChild(section);
  }

  /** The row of a worker node type, made on first sight and kept. */
  private asRow(type: string): IAsRow {
    const known = this.asRows.get(type);
    if (known) {
      return known;
    }
    const row = el('div', 'jray-as-type');
    row.dataset.nodeType = type;
    const head = el('div', 'jray-as-type-head');
    const name = el('code', 'jray-as-type-name', type);
    const resources = el('span', 'jray-as-resources');
    const badge = el('span', 'jray-as-pin');
    head.appendChild(name);
    head.appendChild(resources);
    head.appendChild(badge);
    row.appendChild(head);
    const counts = el('div', 'jray-as-counts');
    row.appendChild(counts);
    const limits = el('div', 'jray-as-limits');
    row.appendChild(limits);
    const controls = el('div', 'jray-as-scale');
    controls.appendChild(el('span', 'jray-as-scale-label', 'scale to'));
    const input = el('input', 'jp-mod-styled jray-as-scale-input');
    input.type = 'number';
    input.min = '0';
    input.step = '1';
    input.setAttribute('aria-label', `Number of ${type} nodes`);
    controls.appendChild(input);
    const scale = el('button', 'jp-Button jp-mod-styled jp-mod-accept jray-button jray-as-scale-button', 'Scale');
    scale.title = `Hold ${type} at this many nodes, whatever the demand`;
    controls.appendChild(scale);
    const auto = el('button', 'jp-Button jp-mod-styled jp-mod-reject jray-button jray-as-auto-button', 'Auto');
    auto.title = `Hand ${type} back to the demand (between its min and max workers)`;
    controls.appendChild(auto);
    row.appendChild(controls);
    const error = el('div', 'jray-as-error');
    error.style.display = 'none';
    row.appendChild(error);
    const r: IAsRow = { row, name, resources, badge, counts, limits, input, scale, auto, error, edited: false };
    input.addEventListener('input', () => {
      r.edited = true;
    });
    input.addEventListener('keydown', ev => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        void this.scaleTo(r, type, true);
      }
    });
    scale.addEventListener('click', () => void this.scaleTo(r, type, true));
    auto.addEventListener('click', () => void this.scaleTo(r, type, false));
    this.asRows.set(type, r);
    return r;
  }

  /** POST autoscaler/scale: pin the type to the input's count, or (Auto) unpin it. */
  private async scaleTo(r: IAsRow, type: string, pin: boolean): Promise<void> {
    let count: number | null = null;
    if (pin) {
      const text = r.input.value.trim();
      count = Number(text);
      if (!text || !Number.isInteger(count) || count < 0) {
        this.asError(r, 'enter a whole number of nodes, 0 or more');
        return;
      }
    }
    this.asError(r, '');
    r.scale.disabled = true;
    r.auto.disabled = true;
    try {
      await requestAPI('autoscaler/scale', {
        method: 'POST',
        body: JSON.stringify({ node_type: type, count })
      });
      if (!pin) {
        r.edited = false;
      }
    } catch (e) {
      this.asError(r, (e as Error).message);
    } finally {
      r.scale.disabled = false;
      r.auto.disabled = false;
      await this.refresh();
    }
  }

  private asError(r: IAsRow, message: string): void {
    r.error.textContent = message;
    r.error.style.display = message ? '' : 'none';
  }

  /** The autoscaler's status (null: none, or the cluster is not running): hide the section. */
  private renderAutoscaler(a: IAutoscalerStatus | null): void {
    this.autoscaler.style.display = a ? '' : 'none';
    if (!a) {
      return;
    }
    const running = a.running !== false;
    this.autoscaler.dataset.running = String(running);
    this.autoscaler.dataset.clusterName = a.cluster_name;
    this.asHeader.textContent = '';
    this.asHeader.appendChild(el('b', 'jray-as-cluster', a.cluster_name));
    this.asHeader.appendChild(document.createTextNode(` · ${a.provider} provider · `));
    const state = running ? 'running' : 'stopped';
    this.asHeader.appendChild(el('span', `jray-as-state jray-state-${state}`, state));
    this.asHeader.appendChild(
      el('div', 'jray-summary', `at most ${plural(a.max_workers, 'worker')}, idle nodes go after ${num(a.idle_timeout_minutes)} min`)
    );

    const types: { [name: string]: IAutoscalerNodeType } = a.node_types ?? {};
    const names = Object.keys(types).sort();
    for (const [name, r] of this.asRows) {
      if (!(name in types)) {
        r.row.remove();
        this.asRows.delete(name);
      }
    }
    const by = (state: string, t: string): number => (a.nodes[state] ?? {})[t] ?? 0;
    names.forEach((t, i) => {
      const nt = types[t];
      const r = this.asRow(t);
      const up = by('running', t);
      const idle = by('idle', t);
      const launching = by('launching', t);
      r.row.dataset.running = String(up);
      r.row.dataset.idle = String(idle);
      r.row.dataset.launching = String(launching);
      r.row.dataset.target = nt.target === null ? '' : String(nt.target);
      r.resources.textContent = ` ${shape(nt.resources)}`;
      r.badge.textContent = nt.target === null ? '' : `pinned to ${nt.target}`;
      r.badge.style.display = nt.target === null ? 'none' : '';
      const backoff = (a.backoff ?? {})[t];
      r.counts.textContent =
        `${up} running · ${idle} idle · ${launching} launching` + (backoff ? ` · next launch in ${Math.ceil(backoff)} s` : '');
      r.limits.textContent = `min ${nt.min_workers} · max ${nt.max_workers}`;
      r.input.max = String(nt.max_workers);
      const want = nt.target ?? nt.count;
      if (r.edited && nt.target !== null && String(nt.target) === r.input.value.trim()) {
        r.edited = false; // the pin asked for is in place: follow the status again
      }
      if (!r.edited && document.activeElement !== r.input) {
        r.input.value = String(want);
      }
      r.scale.disabled = !running;
      r.auto.disabled = !running;
      r.auto.style.display = nt.target === null ? 'none' : '';
      // In name order, moving a row only when out of place: a row taken out
      // of the page and put back loses the focus of its input mid-typing.
      if (this.asTypes.children[i] !== r.row) {
        this.asTypes.insertBefore(r.row, this.asTypes.children[i] ?? null);
      }
    });

    this.asDemand.textContent = '';
    for (const d of a.demand ?? []) {
      const line = el('div', `jray-as-demand-line${d.infeasible ? ' jray-as-infeasible' : ''}`, demandText(d));
      if (d.infeasible) {
        line.appendChild(el('span', 'jray-as-infeasible-mark', ' infeasible'));
      }
      this.asDemand.appendChild(line);
    }
    if (!this.asDemand.childElementCount) {
      this.asDemand.appendChild(el('div', 'jray-summary', 'none'));
    }

    this.asDecisions.textContent = '';
    for (const d of (a.decisions ?? []).slice(-AS_RECENT).reverse()) {
      const line = el('div', 'jray-as-decision');
      line.dataset.action = d.action;
      line.appendChild(el('span', 'jray-as-when', ago(a.time, d.time)));
      line.appendChild(document.createTextNode(` ${d.action} ${d.count} ${d.node_type}: ${d.reason}`));
      this.asDecisions.appendChild(line);
    }
    if (!this.asDecisions.childElementCount) {
      this.asDecisions.appendChild(el('div', 'jray-summary', 'none yet'));
    }

    const failures = (a.failures ?? []).slice(-AS_RECENT).reverse();
    this.asFailures.textContent = '';
    this.asFailuresTitle.style.display = failures.length ? '' : 'none';
    for (const f of failures) {
      const line = el('div', 'jray-as-failure');
      line.dataset.nodeType = f.node_type;
      const left = Math.max(0, f.retry_in_s - (a.time - f.time));
      line.appendChild(el('span', 'jray-as-when', ago(a.time, f.time)));
      line.appendChild(
        document.createTextNode(` ${f.node_type}: ${f.message} (retry in ${Math.round(left)} s)`)
      );
      this.asFailures.appendChild(line);
    }
  }

  /** The Jobs section: shown while the cluster runs. */
  private buildJobs(root: HTMLElement): void {
    const section = el('div', 'jray-jobs-section');
    section.style.display = 'none';
    const title = el('h3', '', 'Jobs');
    this.jobsSummary = el('span', 'jray-jobs-summary');
    title.appendChild(this.jobsSummary);
    section.appendChild(title);
    this.jobsEmpty = el('div', 'jray-jobs-empty');
    this.jobsEmpty.appendChild(el('div', 'jray-summary', 'No jobs yet. Submit a program to the cluster from a terminal:'));
    this.jobsEmpty.appendChild(el('code', 'jray-jobs-hint', 'jray job submit -- python script.py'));
    this.jobsEmpty.style.display = 'none';
    section.appendChild(this.jobsEmpty);
    this.jobsList = el('div', 'jray-jobs');
    section.appendChild(this.jobsList);
    this.jobsMore = el('div', 'jray-summary jray-jobs-more');
    section.appendChild(this.jobsMore);
    this.jobsError = el('div', 'jray-jobs-error');
    this.jobsError.style.display = 'none';
    section.appendChild(this.jobsError);
    this.jobsSection = section;
    root.appendChild(section);
  }

  /** The row of a job, made on first sight and kept. */
  private jobRow(job: IJob): IJobRow {
    const sid = job.submission_id;
    const known = this.jobRows.get(sid);
    if (known) {
      known.job = job;
      return known;
    }
    const row = el('div', 'jray-job');
    row.dataset.submissionId = sid;
    const head = el('div', 'jray-job-head');
    const badge = statusBadge(job.status);
    const id = el('code', 'jray-job-id', sid);
    id.title = sid;
    head.append(badge, id);
    row.appendChild(head);
    const entrypoint = el('code', 'jray-job-entrypoint');
    row.appendChild(entrypoint);
    const message = el('div', 'jray-job-message');
    row.appendChild(message);
    const foot = el('div', 'jray-job-foot');
    const when = el('span', 'jray-job-when');
    const logs = el('button', 'jp-Button jp-mod-styled jp-mod-small jp-mod-reject jray-button jray-job-logs', 'Logs');
    logs.title = `Follow the log of ${sid} in a panel`;
    const stop = el('button', 'jp-Button jp-mod-styled jp-mod-small jp-mod-warn jray-button jray-job-stop', 'Stop');
    stop.title = `Stop ${sid}`;
    foot.append(when, logs, stop);
    row.appendChild(foot);
    const r: IJobRow = { row, badge, id, entrypoint, when, message, logs, stop, job };
    logs.addEventListener('click', () => this.actions.openJobLogs(sid, r.job.entrypoint));
    stop.addEventListener('click', async () => {
      stop.disabled = true;
      try {
        const error = await confirmStopJob(sid, r.job.entrypoint);
        this.jobsActionError = error ?? '';
      } finally {
        stop.disabled = false;
        await this.refresh();
      }
    });
    this.jobRows.set(sid, r);
    return r;
  }

  /** The jobs (or why they could not be read; null: no cluster running, the section hidden). */
  private renderJobs(list: IJobList | string | null): void {
    this.jobsSection.style.display = list === null ? 'none' : '';
    if (list === null) {
      return;
    }
    const error = typeof list === 'string' ? `Jobs: ${list}` : '';
    const text = [this.jobsActionError, error].filter(m => m).join('\n');
    this.jobsError.textContent = text;
    this.jobsError.style.display = text ? '' : 'none';
    if (typeof list === 'string') {
      return; // the last rows stay, with the error under them
    }
    const jobs = list.jobs;
    const counts = new Map<string, number>();
    for (const j of jobs) {
      counts.set(j.status, (counts.get(j.status) ?? 0) + 1);
    }
    this.jobsSummary.textContent = jobs.length
      ? ` · ${[...counts.entries()].map(([st, n]) => `${n} ${st.toLowerCase()}`).join(', ')}`
      : '';
    this.jobsEmpty.style.display = jobs.length ? 'none' : '';
    const shown = jobs.slice(0, JOBS_SHOWN);
    const ids = new Set(shown.map(j => j.submission_id));
    for (const [sid, r] of this.jobRows) {
      if (!ids.has(sid)) {
        r.row.remove();
        this.jobRows.delete(sid);
      }
    }
    shown.forEach((job, i) => {
      const r = this.jobRow(job);
      setStatusBadge(r.badge, job.status);
      r.row.dataset.status = job.status;
      r.entrypoint.textContent = job.entrypoint;
      r.entrypoint.title = job.entrypoint;
      const took = duration(job, list.now);
      r.when.textContent = job.start_time ? `${clock(job.start_time)}${took ? ` · ${took}` : ''}` : 'not started';
      r.when.title = job.start_time
        ? `started ${new Date(job.start_time).toLocaleString()}` +
          (job.end_time ? `, ended ${new Date(job.end_time).toLocaleString()}` : ', running')
        : '';
      const firstLine = (job.message || '').split('\n')[0];
      const showMessage = job.status === 'FAILED' && !!firstLine;
      r.message.textContent = showMessage ? firstLine : '';
      r.message.title = showMessage ? job.message : '';
      r.message.style.display = showMessage ? '' : 'none';
      r.stop.style.display = isTerminal(job.status) ? 'none' : '';
      if (this.jobsList.children[i] !== r.row) {
        this.jobsList.insertBefore(r.row, this.jobsList.children[i] ?? null); // newest first; others stay put
      }
    });
    const more = jobs.length - shown.length;
    this.jobsMore.textContent = more > 0 ? `and ${more} older (jray job list)` : '';
    this.jobsMore.style.display = more > 0 ? '' : 'none';
  }

  private actions: ISidebarActions;
  private timer: number;
  private busy = false;
  private status: IStatus | null = null;
  private stateLine!: HTMLElement;
  private resources!: HTMLElement;
  private tasks!: HTMLElement;
  private nodes!: HTMLElement;
  private views!: HTMLElement;
  private error!: HTMLElement;
  private startButton!: HTMLButtonElement;
  private stopButton!: HTMLButtonElement;
  private disconnectButton!: HTMLButtonElement;
  private connectForm!: HTMLFormElement;
  private connectButton!: HTMLButtonElement;
  private addressInput!: HTMLInputElement;
  private tokenInput!: HTMLInputElement;
  private addressEdited = false;
  private actionError = '';
  private addButton!: HTMLButtonElement;
  private cpusInput!: HTMLInputElement;
  private cpusLabel!: HTMLElement;
  private removeButton!: HTMLButtonElement;
  private snippetButton!: HTMLButtonElement;
  private autoscaler!: HTMLElement;
  private asHeader!: HTMLElement;
  private asTypes!: HTMLElement;
  private asDemand!: HTMLElement;
  private asDecisions!: HTMLElement;
  private asFailuresTitle!: HTMLElement;
  private asFailures!: HTMLElement;
  private asRows = new Map<string, IAsRow>();
  private jobsSection!: HTMLElement;
  private jobsSummary!: HTMLElement;
  private jobsEmpty!: HTMLElement;
  private jobsList!: HTMLElement;
  private jobsMore!: HTMLElement;
  private jobsError!: HTMLElement;
  private jobsActionError = '';
  private jobRows = new Map<string, IJobRow>();
}
