/**
 * The "jray" left sidebar: the cluster's state, nodes and resources (polled
 * from the REST API while the panel is visible), buttons that start, stop and
 * scale the local cluster, a form that connects the server's kernels to a
 * cluster elsewhere (address + token) and a Disconnect button, links to the
 * live views, and the init snippet.
 */
import { Widget } from '@lumino/widgets';

import { INode, IStatus, ITasks, requestAPI } from './api';

const POLL_MS = 2000;

/** What the sidebar asks the application to do (commands, in index.ts). */
export interface ISidebarActions {
  openView(name: string, url: string): void;
  insertSnippet(snippet: string): void;
}

const VIEW_LABELS: { [name: string]: string } = {
  task_stream: 'Task stream',
  object_store: 'Object store'
};

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(2)} GiB`;
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
      if (status.state === 'running') {
        const [n, t] = await Promise.all([
          requestAPI<{ nodes: INode[] }>('nodes'),
          requestAPI<ITasks>('tasks')
        ]);
        nodes = n.nodes;
        tasks = t;
      }
      this.status = status;
      this.render(status, nodes, tasks);
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
    this.stopButton = this.button(buttons, 'Stop', 'jray-stop', () => this.post('stop'));
    this.disconnectButton = this.button(buttons, 'Disconnect', 'jray-disconnect', () => this.post('detach'));
    this.addButton = this.button(buttons, 'Add node', 'jray-add-node', () => this.post('nodes'));
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
    action: () => Promise<unknown>
  ): HTMLButtonElement {
    const b = el('button', `jp-Button jp-mod-styled jp-mod-reject jray-button ${cls}`, label);
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
      this.resources.appendChild(bar('store', storeUsed, store, `${gib(storeUsed)} / ${gib(store)}`));
      const spilled = s.spilled_bytes ? `, ${gib(s.spilled_bytes)} spilled` : '';
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
            `${gib(n.object_store_used)} / ${gib(n.object_store_memory)}`
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
  private removeButton!: HTMLButtonElement;
  private snippetButton!: HTMLButtonElement;
}
