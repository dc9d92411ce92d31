using BioForge.Chem;

namespace BioForge.Discovery;

/// <summary>
/// One counted oracle call: its number (1-based), the step that made it, the canonical SMILES and its score, and why the
/// scoring function could not score the molecule when it could not (the score is then 0).
/// </summary>
public sealed record OracleCall(int Call, int Step, string Smiles, double Score, string? Error = null);

/// <summary>
/// An oracle budget counted as the PMO benchmark (<c>mol_opt</c>) counts it: a call is one unique molecule (canonical
/// SMILES) RDKit reads, sent to the scoring function; a repeat is answered from a cache and not counted, and an
/// invalid SMILES scores 0 and is not counted. A molecule a component could not score (an external program's null or
/// NaN, a component's RDKit error) was still asked about, so it counts, scores 0, and its repeats are not asked again. A batch that would cross the limit is cut after the molecule that makes the last call,
/// so a run makes exactly <see cref="Limit"/> calls. In memory only; the run directory's <c>oracle_calls.csv</c> is
/// the shell's business (<see cref="MoleculeOptimizer"/>), and <see cref="Restore"/> rebuilds the budget from it.
/// </summary>
public sealed class OracleBudget(int limit)
{
    // Scores are those of one stage's scoring function; a new stage asks its own function again (and pays for it).
    private readonly Dictionary<string, CachedScore> cache = new(StringComparer.Ordinal);
    private readonly List<OracleCall> calls = [];
    private int cacheStage = -1;

    private sealed record CachedScore(double Score, double[] Raw, double[] Transformed, string? Error = null);

    public int Limit { get; } = limit;
    public int Used => calls.Count;
    public bool Exhausted => calls.Count >= Limit;
    public IReadOnlyList<OracleCall> Calls => calls;
    /// <summary>Whether at least <paramref name="count"/> calls so far scored above zero.</summary>
    public bool Found(int count) => calls.Count(c => c.Score > 0) >= count;
    /// <summary>Whether <paramref name="top"/> calls scored 1, the most a total score can be: the top list cannot rise.</summary>
    public bool AtCeiling(int top = 10) => calls.Count(c => c.Score >= 1) >= top;

    /// <summary>Whether the last <paramref name="newCalls"/> calls changed the <paramref name="top"/> best scores of the
    /// calls from <paramref name="since"/> on (mol_opt's early-stop test; a restarted search counts its own).</summary>
    public bool TopChanged(int newCalls, int top = 100, int since = 0) => TopChanged(since == 0 ? calls : calls[since..], newCalls, top);

    /// <summary>
    /// Whether the last <paramref name="newCalls"/> of <paramref name="calls"/> changed the list of the <paramref name="top"/>
    /// best scores: some score enters it (while it is shorter than <paramref name="top"/>, any call does).
    /// </summary>
    public static bool TopChanged(IReadOnlyList<OracleCall> calls, int newCalls, int top)
    {
        int before = calls.Count - newCalls;
        if (newCalls == 0) return false;
        if (before < top) return true;
        double lowest = calls.Take(before).Select(c => c.Score).OrderDescending().ElementAt(top - 1);
        return calls.Skip(before).Any(c => c.Score > lowest);
    }

    /// <summary>
    /// Continues a resumed run: <paramref name="previous"/> are its counted calls in order; those made from
    /// <paramref name="stageFirstStep"/> on were scored by <paramref name="stage"/>'s function and answer its repeats
    /// again. The components' parts of those answers are not in the file: they come back as NaN, the score and the reason a
    /// molecule went unscored exact.
    /// </summary>
    public void Restore(IReadOnlyList<OracleCall> previous, int stage, int stageFirstStep, int components)
    {
        calls.Clear();
        cache.Clear();
        cacheStage = stage;
        for (int i = 0; i < previous.Count; i++)
        {
            var call = previous[i];
            if (call.Call != i + 1) throw new BioForgeException($"oracle calls: call {call.Call} found where call {i + 1} was expected (the file is out of order)");
            calls.Add(call);
            if (call.Step >= stageFirstStep)
                cache.TryAdd(call.Smiles, new CachedScore(call.Score, Nan(components), Nan(components), call.Error));
        }
        if (calls.Count > Limit) throw new BioForgeException($"oracle calls: {calls.Count} recorded, more than the budget of {Limit}");
    }

    /// <summary>
    /// Scores a batch of sampled SMILES in order, asking <paramref name="scoring"/> only about molecules not seen before
    /// in this stage, and only as many as the budget has left.
    /// </summary>
    /// <returns>The scored molecules (the first <c>Scored.Count</c> samples: fewer than given when the budget ran out
    /// in this batch) and the calls this batch made.</returns>
    public (IReadOnlyList<ScoredMolecule> Scored, IReadOnlyList<OracleCall> NewCalls) Score(IReadOnlyList<string> smiles, int step, int stage, ScoringFunction scoring)
    {
        if (stage != cacheStage)
        {
            cache.Clear();
            cacheStage = stage;
        }
        int components = scoring.Components.Count;
        var molecules = new Molecule?[smiles.Count];
        try
        {
            var canonical = new string?[smiles.Count];
            Parallel.For(0, smiles.Count, i =>
            {
                if (smiles[i].Length > 0 && Molecule.TryFromSmiles(smiles[i], out var m, out _))
                {
                    molecules[i] = m;
                    canonical[i] = m!.ToSmiles();
                }
            });

            // The new molecules, first occurrence only, in sample order, up to what the budget has left.
            var fresh = new List<int>();
            var freshSet = new HashSet<string>(StringComparer.Ordinal);
            int end = smiles.Count;
            for (int i = 0; i < smiles.Count; i++)
            {
                if (Used + fresh.Count >= Limit)
                {
                    end = i; // the budget is spent: the rest of the batch is neither scored nor learned from
                    break;
                }
                if (canonical[i] is { } c && !cache.ContainsKey(c) && freshSet.Add(c)) fresh.Add(i);
            }

            var scored = scoring.Score([.. fresh.Select(i => smiles[i])], [.. fresh.Select(i => molecules[i])]);
            var newCalls = new List<OracleCall>();
            for (int k = 0; k < fresh.Count; k++)
            {
                var m = scored[k];
                var call = new OracleCall(calls.Count + 1, step, canonical[fresh[k]]!, m.Score, m.Error);
                calls.Add(call);
                newCalls.Add(call);
                cache[call.Smiles] = new CachedScore(m.Score, m.Raw, m.Transformed, m.Error);
            }

            var freshAt = fresh.Select((i, k) => (i, k)).ToDictionary(p => p.i, p => scored[p.k]);
            var result = new ScoredMolecule[end];
            for (int i = 0; i < end; i++)
            {
                if (freshAt.TryGetValue(i, out var m)) result[i] = m;
                else if (canonical[i] is { } c && cache.TryGetValue(c, out var known))
                {
                    result[i] = known.Error is { } error
                        ? new ScoredMolecule(smiles[i], null, null, 0, known.Raw, known.Transformed) { Error = error }
                        : new ScoredMolecule(smiles[i], c, molecules[i]!.MurckoScaffold(), known.Score, known.Raw, known.Transformed)
                        {
                            GenericScaffold = molecules[i]!.MurckoScaffold(generic: true),
                        };
                }
                else result[i] = new ScoredMolecule(smiles[i], null, null, 0, Nan(components), Nan(components));
            }
            return (result, newCalls);
        }
        finally
        {
            foreach (var m in molecules) m?.Dispose();
        }
    }

    private static double[] Nan(int count) => [.. Enumerable.Repeat(double.NaN, count)];
}
