namespace BioForge.Distributed;

/// <summary>
/// Where this process stands in a job, as the launcher says: Open MPI's <c>mpirun</c> (OMPI_COMM_WORLD_*), SLURM's
/// <c>srun</c> (SLURM_PROCID / SLURM_STEP_NUM_TASKS / SLURM_LOCALID) or a PMI launcher (PMI_RANK / PMI_SIZE). Without any
/// of them the process is a world of one. A Slurm batch script itself (sbatch) has SLURM_PROCID and SLURM_NTASKS of the
/// allocation but runs once: only a job step's variables, which srun sets, say the process is one of several.
/// </summary>
public sealed record Launch(int Rank, int Size, int LocalRank, string Launcher)
{
    public bool Distributed => Size > 1;

    public static Launch FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    public static Launch FromEnvironment(Func<string, string?> variable)
    {
        (string Name, string Rank, string Size, string Local)[] launchers =
        [
            ("mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
            ("srun", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"),
            ("pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
        ];
        foreach (var (name, rankKey, sizeKey, localKey) in launchers)
        {
            string? size = variable(sizeKey), rank = variable(rankKey);
            if (size is null || rank is null) continue;
            int Parse(string key, string text) => int.TryParse(text, out int value) && value >= 0
                ? value : throw new BioForgeException($"{key}={text}: expected a non-negative whole number");
            int n = Parse(sizeKey, size), r = Parse(rankKey, rank);
            if (n < 1 || r >= n) throw new BioForgeException($"{rankKey}={r} is outside {sizeKey}={n}");
            string? local = variable(localKey);
            return new Launch(r, n, local is null ? 0 : Parse(localKey, local), name);
        }
        return new Launch(0, 1, 0, "none");
    }
}
