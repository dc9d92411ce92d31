using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Distributed;

/// <summary>
/// The world arranged as data-parallel × tensor-parallel (Megatron's grid): tensor-parallel groups are blocks of
/// consecutive ranks — on one node when the node's ranks are consecutive, where the per-layer all-reduces are cheapest —
/// and each data-parallel group takes the ranks holding the same shard in every block. With 4 ranks and TP 2:
/// tensor groups {0, 1} and {2, 3}, data groups {0, 2} and {1, 3}.
/// </summary>
public sealed class ParallelGrid : IDisposable
{
    private readonly List<Communicator> owned = [];

    public Communicator World { get; }
    /// <summary>Ranks that hold the same shards and see different data: gradients are summed here.</summary>
    public Communicator Data { get; }
    /// <summary>Ranks that see the same data and hold different shards of each split layer.</summary>
    public Communicator Tensor { get; }

    /// <summary>A collective over <paramref name="world"/>: every rank calls it with the same size.</summary>
    /// <param name="device">Where the model lives: on CUDA, groups of more than one rank exchange tensors over NCCL.</param>
    public ParallelGrid(Communicator world, int tensorParallelSize, Device? device = null)
    {
        if (tensorParallelSize < 1 || world.Size % tensorParallelSize != 0)
            throw new BioForgeException($"tensor parallelism: the world of {world.Size} rank(s) does not divide into tensor-parallel groups of {tensorParallelSize}");
        World = world;
        if (tensorParallelSize == 1)
        {
            Data = world;
            Tensor = Own(new SingleProcessCommunicator());
        }
        else if (tensorParallelSize == world.Size)
        {
            Data = Own(new SingleProcessCommunicator());
            Tensor = world;
        }
        else
        {
            Tensor = Own(world.Split(color: world.Rank / tensorParallelSize, key: world.Rank));
            Data = Own(world.Split(color: world.Rank % tensorParallelSize, key: world.Rank));
        }
        if (device?.type == DeviceType.CUDA)
        {
            Data = OnGpu(Data, device);
            Tensor = OnGpu(Tensor, device);
        }
    }

    private Communicator OnGpu(Communicator group, Device device) => group.Size == 1 ? group : Own(NcclCommunicator.Create(group, device));

    /// <summary>
    /// The GPU a process of a distributed job should use when told just "cuda": one per process, by local rank
    /// (mpirun/srun start one process per GPU). Any other device is returned as it is, but a numbered GPU on a machine
    /// that runs several ranks and shows each several GPUs: one configuration gives every rank the same number, which
    /// puts them all on one GPU (NCCL then fails to start with a message that does not say why). A rank after the
    /// first on its machine says so; one rank a machine keeps its numbered GPU.
    /// </summary>
    public static Device LocalDevice(Device device, Launch launch) => LocalDevice(device, launch, device.type == DeviceType.CUDA ? (int)cuda.device_count() : 0);

    internal static Device LocalDevice(Device device, Launch launch, int visibleGpus)
    {
        if (device.type != DeviceType.CUDA || !launch.Distributed) return device;
        if (device.index >= 0)
            return visibleGpus <= 1 || launch.LocalRank == 0 ? device
                : throw new BioForgeException($"device cuda:{device.index} in a distributed run puts every rank of a machine on GPU {device.index} (rank {launch.Rank} is local rank {launch.LocalRank} "
                    + $"of its machine and sees {visibleGpus} GPUs): give 'cuda', and each rank takes the GPU of its local rank, or give each rank one GPU (CUDA_VISIBLE_DEVICES, srun --gpus-per-task 1)");
        return new Device(DeviceType.CUDA, visibleGpus == 0 ? 0 : launch.LocalRank % visibleGpus);
    }

    private Communicator Own(Communicator communicator)
    {
        owned.Add(communicator);
        return communicator;
    }

    public void Dispose()
    {
        foreach (var communicator in owned) communicator.Dispose();
    }
}
