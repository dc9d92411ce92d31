using System.Diagnostics;
using System.Runtime.ExceptionServices;
using BioForge.Runtime;
using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>How the scheduler lets waiting sequences into the running batch.</summary>
public enum BatchingMode
{
    /// <summary>Iteration-level (Orca, vLLM): a waiting sequence joins at the next step whenever a slot is free.</summary>
    Continuous,
    /// <summary>Request-level: a batch is formed from what waits, run until its last sequence ends, then the next. A
    /// sequence that ends leaves the computation at once; its slot stays empty until the batch ends.</summary>
    Static,
    /// <summary>
    /// Request-level as Hugging Face's <c>generate</c> runs a batch, the baseline of the continuous-batching papers: a
    /// sequence that ends is answered at once but keeps its row, fed padding, until the batch's last sequence ends. On a
    /// device whose step costs the same for any number of rows (a GPU) it is <see cref="Static"/>; on a CPU, where a
    /// step's cost grows with its rows, the padding rows cost what the live ones do.
    /// </summary>
    Padded,
    /// <summary>One sequence at a time (the baseline).</summary>
    Single,
}

/// <summary>Why a sequence ended, as OpenAI reports it (<c>stop</c>, <c>length</c>), or because its client left.</summary>
public enum FinishReason { Stop, Length, Cancelled }

/// <summary>
/// One sequence to decode. Its randomness is (<see cref="Seed"/>, <see cref="Index"/>): the same pair gives the same
/// tokens whatever else runs beside it (<see cref="SequenceSampler"/>). The callbacks run on the scheduler's thread,
/// between steps: keep them short.
/// </summary>
public sealed class SequenceJob
{
    /// <summary>The prompt, begin token first.</summary>
    public required int[] Prompt { get; init; }
    public required SamplingOptions Options { get; init; }
    public required ulong Seed { get; init; }
    public required long Index { get; init; }
    /// <summary>Alternatives reported with each token (OpenAI's <c>logprobs</c>); 0 for none.</summary>
    public int TopLogprobs { get; init; }

    /// <summary>A drawn token other than end-of-sequence; false ends the sequence here (a stop string matched).</summary>
    public required Func<TokenDraw, bool> OnToken { get; init; }

    /// <summary>The end, with the log-likelihood at temperature 1 of every drawn token (end token included).</summary>
    public required Action<FinishReason, double> OnFinished { get; init; }

    /// <summary>Polled before every step: true frees the sequence's slot (client gone, deadline passed).</summary>
    public Func<bool>? Cancelled { get; init; }

    /// <summary>
    /// When set, a failure of this sequence's own work (its draw, its grammar) ends it alone: this is called with the
    /// exception, then <see cref="OnFinished"/> with <see cref="FinishReason.Cancelled"/>, and the other sequences go on
    /// (a server's requests are not one another's business). Unset, the failure fails the step (<c>generate</c>).
    /// </summary>
    public Action<Exception>? OnFailed { get; init; }

    /// <summary>A job that keeps its drawn tokens and hands the whole sample over at its end (<c>generate</c>, not a stream).</summary>
    public static SequenceJob Collecting(int[] prompt, SamplingOptions options, ulong seed, long index, Action<IReadOnlyList<int>, FinishReason, double> finished)
    {
        var tokens = new List<int>();
        return new SequenceJob
        {
            Prompt = prompt,
            Options = options,
            Seed = seed,
            Index = index,
            OnToken = draw =>
            {
                tokens.Add(draw.Token);
                return true;
            },
            OnFinished = (reason, logLikelihood) => finished(tokens, reason, logLikelihood),
        };
    }
}

/// <summary>
/// What one step did: sequences prefilled (prompts longer than one token, in passes of their own), rows of the decoding
/// pass (one-token prompts admitted this step among them), of those the padding rows of ended sequences
/// (<see cref="BatchingMode.Padded"/>), tokens drawn, sequences running after it (padding included), and the seconds
/// spent on the host after the logits arrived (grammar, draws, callbacks: the part of a step that no device speeds up),
/// the waiting sequences dropped uncomputed because their client had gone, and the running ones stopped for it.
/// </summary>
public readonly record struct DecodeStepReport(int Prefilled, int Decoded, int Padding, int Tokens, int Running, int Waiting, double HostSeconds, int Dropped = 0,
    int Cancelled = 0);

/// <summary>
/// Continuous batching of one decoder on one device (Orca, OSDI 2022; vLLM, SOSP 2023): one running batch whose
/// sequences each own a slot of a <see cref="SlotCache"/>, kept in slots 0 … R − 1 (a sequence that ends hands its slot
/// to the last one), so a decoding step's attention reads the cache in place. Each <see cref="Step"/> drops cancelled sequences, lets
/// waiting ones into free slots and prefills their prompts (equal lengths together), and decodes one token for every
/// sequence already running; a sequence that ends leaves at once and frees its slot. Work beyond the slots waits in a
/// bounded queue (<see cref="TrySubmit"/> refuses beyond it). The scheduler holds no thread: <see cref="Step"/> is
/// called by one thread (the server's device worker, or <see cref="SmilesGenerator"/> in a loop); <see cref="TrySubmit"/>
/// from any.
/// </summary>
public sealed class DecodeScheduler : IDisposable
{
    private readonly DecoderNetwork model;
    private readonly SlotCache cache;
    private readonly BatchingMode mode;
    private readonly int queueCapacity;
    private readonly Queue<SequenceJob> waiting = new();
    /// <summary>Waves carrying on requests admitted earlier (<see cref="TrySubmit"/>'s <c>continuing</c>): taken before <see cref="waiting"/>, first come first served among themselves.</summary>
    private readonly Queue<SequenceJob> resumed = new();
    private readonly Lock gate = new();
    /// <summary>Sequence i holds slot i.</summary>
    private readonly List<Sequence> running = [];

    /// <param name="slots">Sequences decoded at once (key/value slots); 1 in <see cref="BatchingMode.Single"/>.</param>
    /// <param name="length">Positions per slot (prompt and generated tokens), at most the model's.</param>
    /// <param name="queueCapacity">Sequences that may wait for a slot.</param>
    public DecodeScheduler(DecoderNetwork model, int slots, int length, BatchingMode mode, int queueCapacity)
    {
        if (length < 2 || length > model.MaxPositions) throw new BioForgeException($"sequence length must be 2–{model.MaxPositions} (got {length})");
        if (queueCapacity < 1) throw new BioForgeException($"queue capacity must be positive (got {queueCapacity})");
        this.model = model;
        this.mode = mode;
        this.queueCapacity = queueCapacity;
        Slots = mode == BatchingMode.Single ? 1 : slots;
        cache = new SlotCache(model, Slots, length);
    }

    public int Slots { get; }

    /// <summary>Positions per sequence: prompt plus generated tokens.</summary>
    public int Length => cache.Length;
    public int EndToken => model.EosTokenId;

    public BatchingMode Mode => mode;

    public int Waiting
    {
        get
        {
            lock (gate) return waiting.Count + resumed.Count;
        }
    }

    /// <summary>Sequences holding a slot (read by metrics on other threads: a snapshot).</summary>
    public int Running => Volatile.Read(ref runningCount);

    private int runningCount;

    /// <summary>True when there is anything to step: sequences running or waiting.</summary>
    public bool Busy => Running > 0 || Waiting > 0;

    /// <summary>Sequences that may wait for a slot at once.</summary>
    public int QueueCapacity => queueCapacity;

    /// <summary>Queues <paramref name="jobs"/> (all or none); false when the queue cannot take them all.</summary>
    /// <param name="continuing">
    /// The jobs carry on work admitted earlier (a request that needs another wave of samples): they are never refused
    /// and go ahead of the new requests (behind earlier continuing waves), so a request once admitted is not failed
    /// halfway by later ones. The queue holds at most the capacity plus such waves, each at most the capacity (the server's are).
    /// </param>
    public bool TrySubmit(IReadOnlyList<SequenceJob> jobs, bool continuing = false)
    {
        foreach (var job in jobs)
        {
            if (job.Prompt.Length < 1 || job.Prompt.Length >= Length)
                throw new BioForgeException($"a prompt takes 1–{Length - 1} tokens here (got {job.Prompt.Length})");
            job.Options.Validate();
            if (job.Options.Grammar is { } grammar)
            {
                if (grammar.VocabularySize != model.VocabularySize)
                    throw new BioForgeException($"the grammar covers {grammar.VocabularySize} tokens but the model has {model.VocabularySize}") { ServerFault = true };
                grammar.StartAfter(job.Prompt.AsSpan(1)); // a prompt the grammar refuses is the submitter's error, not a failed step
            }
        }
        lock (gate)
        {
            if (continuing)
            {
                foreach (var job in jobs) resumed.Enqueue(job);
                return true;
            }
            if (waiting.Count + resumed.Count + jobs.Count > queueCapacity) return false;
            foreach (var job in jobs) waiting.Enqueue(job);
            return true;
        }
    }

    /// <summary>One iteration: cancellations, admissions with their prefill, then one decoding step of the running batch.</summary>
    public DecodeStepReport Step()
    {
        using var _ = no_grad();
        int cancelled = 0;
        for (int i = running.Count - 1; i >= 0; i--)
            if (!running[i].Finished && running[i].Job.Cancelled?.Invoke() == true)
            {
                Retire(i, FinishReason.Cancelled);
                cancelled++;
            }
        EndPaddedBatch(); // its last live sequence may have been cancelled: no step of padding alone
        dropped = 0;
        DropCancelledWaiting();
        // Padding rows (Padded mode) are fed while their slots have room; a live row whose slot is full has ended.
        var decoding = running.Where(r => r.Pending >= 0 && r.Filled < cache.Length).ToList();
        int padding = decoding.Count(r => r.Finished);
        var admitted = Admit();
        int tokens = 0;
        hostSeconds = 0;
        // A one-token prompt (the begin token alone: de novo samples) is fed like any running row's pending token, at
        // position 0 in the same forward pass; a separate prefill pass for the few rows admitted at each step would
        // cost a whole pass of fixed overhead per step on a CPU.
        foreach (var r in admitted.Where(r => r.Job.Prompt.Length == 1))
        {
            r.Pending = r.Job.Prompt[0];
            decoding.Add(r);
        }
        foreach (var group in admitted.Where(r => r.Job.Prompt.Length > 1).GroupBy(r => r.Job.Prompt.Length))
            tokens += Forward([.. group], group.Key, prefill: true);
        if (decoding.Count > 0)
        {
            decoding.Sort((a, b) => a.Slot.CompareTo(b.Slot)); // a prefill's ending sequences may have moved others
            tokens += Forward(decoding, 1, prefill: false);
        }
        EndPaddedBatch();
        Volatile.Write(ref runningCount, running.Count);
        return new DecodeStepReport(admitted.Count(r => r.Job.Prompt.Length > 1), decoding.Count, padding, tokens, running.Count, Waiting, hostSeconds, dropped, cancelled);
    }

    private double hostSeconds;
    private int dropped;

    /// <summary>A padded batch whose sequences have all ended frees its slots (<see cref="BatchingMode.Padded"/>).</summary>
    private void EndPaddedBatch()
    {
        if (running.Count > 0 && running.TrueForAll(r => r.Finished)) running.Clear();
    }

    /// <summary>Waiting sequences whose client left give their queue places back now, not when a slot frees (with
    /// every slot on a long decode, they would turn new requests away as a full queue).</summary>
    private void DropCancelledWaiting()
    {
        var gone = new List<SequenceJob>();
        lock (gate)
        {
            foreach (var queue in new[] { resumed, waiting })
            {
                int before = gone.Count;
                var live = new List<SequenceJob>(queue.Count);
                foreach (var job in queue) (job.Cancelled?.Invoke() == true ? gone : live).Add(job);
                if (gone.Count == before) continue;
                queue.Clear();
                foreach (var job in live) queue.Enqueue(job);
            }
        }
        if (gone.Count == 0) return;
        dropped += gone.Count;
        TellCancelled(gone);
    }

    /// <summary>
    /// Tells each job it ended cancelled: a callback that throws keeps none of the others from being told (their
    /// requests would wait for their deadline); the first exception is thrown once all were told.
    /// </summary>
    private static void TellCancelled(IEnumerable<SequenceJob> jobs)
    {
        Exception? first = null;
        foreach (var job in jobs)
        {
            try
            {
                job.OnFinished(FinishReason.Cancelled, 0);
            }
            catch (Exception e)
            {
                first ??= e;
            }
        }
        if (first is not null) ExceptionDispatchInfo.Throw(first);
    }

    private List<Sequence> Admit()
    {
        var admitted = new List<Sequence>();
        if (mode != BatchingMode.Continuous && running.Count > 0) return admitted; // the batch runs to its end first
        var gone = new List<SequenceJob>();
        var failed = new List<(SequenceJob Job, Exception Error)>();
        lock (gate)
        {
            while (running.Count < Slots && (resumed.TryDequeue(out var job) || waiting.TryDequeue(out job)))
            {
                if (job.Cancelled?.Invoke() == true)
                {
                    gone.Add(job);
                    continue;
                }
                ITokenGrammarState? grammar;
                try
                {
                    grammar = job.Options.Grammar?.StartAfter(job.Prompt.AsSpan(1));
                }
                catch (Exception e)
                {
                    // Off the queue and not running: unless it is answered here, its request waits for its deadline.
                    failed.Add((job, e));
                    continue;
                }
                var r = new Sequence(job, running.Count, grammar);
                running.Add(r);
                admitted.Add(r);
            }
        }
        dropped += gone.Count;
        // Told outside the lock, which request threads and the metrics take: a callback never holds them up. Every failed
        // job is answered whatever another's callback throws (off the queue, one not told is lost); a job without a
        // failure callback fails the step, as in Decide, once all are told.
        Exception? first = null;
        try
        {
            TellCancelled(gone);
        }
        catch (Exception e)
        {
            first = e;
        }
        foreach (var (job, error) in failed)
        {
            try
            {
                if (job.OnFailed is null) first ??= error;
                else job.OnFailed(error);
                job.OnFinished(FinishReason.Cancelled, 0);
            }
            catch (Exception e)
            {
                first ??= e;
            }
        }
        if (first is not null) ExceptionDispatchInfo.Throw(first);
        return admitted;
    }

    /// <summary>
    /// One forward pass: prompts of <paramref name="count"/> tokens from position 0 (prefill), or each row's pending
    /// token at its own position; then a draw per row from the last position's logits.
    /// </summary>
    private int Forward(List<Sequence> rows, int count, bool prefill)
    {
        using var scope = NewDisposeScope();
        var starts = rows.Select(r => prefill ? 0 : r.Filled).ToArray();
        long attend = starts.Max() + count;
        var ids = new long[rows.Count * count];
        var positions = new long[ids.Length];
        for (int b = 0; b < rows.Count; b++)
            for (int t = 0; t < count; t++)
            {
                ids[b * count + t] = prefill ? rows[b].Job.Prompt[t] : rows[b].Pending;
                positions[b * count + t] = starts[b] + t;
            }
        var device = model.Device;
        var positionTensor = tensor(positions, [rows.Count, count]).to(device);
        // Token (b, t) sees the cached positions up to its own: the causal mask and the ends of shorter rows at once.
        var allowed = ScalarArithmetic.Range(0, attend, device).view(1, 1, 1, attend).le(positionTensor.view(rows.Count, 1, count, 1));
        cache.Bind(rows.Select(r => r.Slot).ToArray(), starts, count, attend);
        int live = rows.Count(r => !r.Finished);
        Tensor logits;
        try
        {
            logits = model.Forward(tensor(ids, [rows.Count, count]).to(device), positionTensor, allowed, cache)
                .select(1, count - 1).to(ScalarType.Float32).cpu().contiguous();
        }
        finally
        {
            cache.Unbind(); // its index tensors belong to this step's dispose scope
        }
        var host = logits.data<float>().ToArray();
        long received = Stopwatch.GetTimestamp();
        int vocabulary = (int)logits.shape[1];
        // Every row's cache has grown before any ends: an ending sequence moves the last one into its slot, new keys included.
        for (int b = 0; b < rows.Count; b++) rows[b].Filled = starts[b] + count;
        var (draws, failures) = Decide(rows, host, vocabulary);
        for (int b = 0; b < rows.Count; b++)
        {
            if (rows[b].Finished) continue; // padding: its logits are computed, as in a padded batch, and not drawn from
            if (failures[b] is { } failure)
            {
                Fail(rows[b], failure);
                continue;
            }
            try
            {
                Advance(rows[b], draws[b]);
            }
            // A callback failing as the sequence ends fails the step in every mode (an ended padded row is still in the batch).
            catch (Exception e) when (rows[b].Job.OnFailed is not null && running.Contains(rows[b]) && !rows[b].Finished)
            {
                Fail(rows[b], e);
            }
        }
        hostSeconds += Stopwatch.GetElapsedTime(received).TotalSeconds;
        return live;
    }

    /// <summary>
    /// Each row's grammar verdict and draw. They read only the row's own logits, grammar state and randomness, so the
    /// draws are the same in any order; with many rows they run on LibTorch's intra-op thread count, idle between
    /// forward passes. On the H200 each added row cost a step ~38 µs (3.5 ms at 33 rows, 4.6 ms at 62), and the SMILES
    /// grammar's verdict and draw take ~18 µs per row on one of cpu2's cores (bench decode's host_us_per_row): at a
    /// hundred rows, more than the forward pass. A failed row whose job has no <see cref="SequenceJob.OnFailed"/> fails the
    /// step (its exception, before any row advances); the others' failures are returned, to end those rows alone.
    /// </summary>
    private (TokenDraw[] Draws, Exception?[] Failures) Decide(List<Sequence> rows, float[] host, int vocabulary)
    {
        var draws = new TokenDraw[rows.Count];
        var failures = new Exception?[rows.Count];
        void Row(int b)
        {
            try
            {
                var r = rows[b];
                if (r.Finished) return;
                var logits = host.AsSpan(b * vocabulary, vocabulary);
                if (r.Grammar is { } grammar)
                {
                    r.Constraint ??= new TokenConstraint(vocabulary, model.EosTokenId);
                    r.Constraint.Fill(grammar);
                }
                draws[b] = SequenceSampler.Draw(logits, r.Job.Options, r.Job.Seed, r.Job.Index, r.Generated, r.Job.TopLogprobs, r.Constraint, r.History, model.EosTokenId);
            }
            catch (Exception e)
            {
                failures[b] = e;
            }
        }
        int threads = get_num_threads();
        if (threads > 1 && rows.Count >= ParallelRows) Parallel.For(0, rows.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, Row);
        else for (int b = 0; b < rows.Count; b++) Row(b);
        for (int b = 0; b < rows.Count; b++)
            if (failures[b] is { } failure && rows[b].Job.OnFailed is null) ExceptionDispatchInfo.Throw(failure);
        return (draws, failures);
    }

    private void Fail(Sequence r, Exception failure)
    {
        r.Job.OnFailed!(failure);
        Retire(running.IndexOf(r), FinishReason.Cancelled);
    }

    /// <summary>Rows below which the per-row work stays on the stepping thread (a task hand-off costs more than a few rows).</summary>
    private const int ParallelRows = 8;

    private void Advance(Sequence r, TokenDraw draw)
    {
        var job = r.Job;
        r.Grammar?.Advance(draw.Token);
        r.History?.Add(draw.Token);
        r.LogLikelihood += draw.LogProb;
        r.Generated++;
        if (draw.Token == model.EosTokenId || !job.OnToken(draw)) End(r, FinishReason.Stop);
        else if (r.Generated >= job.Options.MaxNewTokens || r.Filled + 1 >= cache.Length) End(r, FinishReason.Length);
        else r.Pending = draw.Token;
    }

    /// <summary>A sequence's own end: it leaves the batch, or in <see cref="BatchingMode.Padded"/> is answered and stays as padding.</summary>
    private void End(Sequence r, FinishReason reason)
    {
        if (mode != BatchingMode.Padded)
        {
            Retire(running.IndexOf(r), reason);
            return;
        }
        r.Finished = true;
        r.Pending = model.EosTokenId;
        r.Job.OnFinished(reason, r.LogLikelihood);
    }

    private void Retire(int index, FinishReason reason)
    {
        var r = running[index];
        int last = running.Count - 1;
        if (index != last)
        {
            var moved = running[last];
            cache.Move(moved.Slot, r.Slot, moved.Filled);
            moved.Slot = r.Slot;
            running[index] = moved;
        }
        running.RemoveAt(last);
        if (!r.Finished) r.Job.OnFinished(reason, r.LogLikelihood);
    }

    /// <summary>
    /// Ends every running sequence as cancelled (after a failed step, whose batch is in an unknown state); sequences
    /// still waiting were in no batch and run in the next step. With <paramref name="waitingToo"/> (the service is
    /// stopping), the waiting ones end too. Not while a step runs.
    /// </summary>
    public void CancelRunning(bool waitingToo = false)
    {
        var ended = new List<SequenceJob>();
        for (int i = running.Count - 1; i >= 0; i--)
        {
            if (!running[i].Finished) ended.Add(running[i].Job);
            running.RemoveAt(i); // the last row each time: no keys move
        }
        Volatile.Write(ref runningCount, 0);
        if (waitingToo)
        {
            lock (gate)
            {
                ended.AddRange(resumed);
                ended.AddRange(waiting);
                resumed.Clear();
                waiting.Clear();
            }
        }
        TellCancelled(ended);
    }

    public void Dispose() => cache.Dispose();

    private sealed class Sequence(SequenceJob job, int slot, ITokenGrammarState? grammar)
    {
        public SequenceJob Job { get; } = job;
        public int Slot { get; set; } = slot;
        /// <summary>Where the sequence stands in its grammar (<see cref="SamplingOptions.Grammar"/>), prompt included.</summary>
        public ITokenGrammarState? Grammar { get; } = grammar;
        public TokenConstraint? Constraint { get; set; }
        /// <summary>The tokens so far, kept only when the job's options penalise repeats.</summary>
        public TokenHistory? History { get; } = job.Options.Penalises ? new TokenHistory(job.Prompt) : null;
        /// <summary>Positions of the slot holding keys and values.</summary>
        public int Filled { get; set; }
        /// <summary>The last drawn token, to be fed at the next step; −1 until the prompt is prefilled.</summary>
        public long Pending { get; set; } = -1;
        public int Generated { get; set; }
        public double LogLikelihood { get; set; }
        /// <summary>Answered, and kept in the batch as padding (<see cref="BatchingMode.Padded"/>).</summary>
        public bool Finished { get; set; }
    }
}
