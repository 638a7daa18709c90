#version 330 core
// A lighter stand-in for pyrender's mesh.vert for meshes with positions, normals and vertex
// colours only. pyrender's version inverts the model matrix per vertex to transform normals,
// which dominates the cost of a frame on a software rasteriser; our models are placed with
// rigid transforms, for which the normal matrix is the rotation itself.

layout(location = 0) in vec3 position;
#ifdef NORMAL_LOC
layout(location = NORMAL_LOC) in vec3 normal;
#endif
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;
out vec4 color_multiplier;
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 frag_position;
#ifdef NORMAL_LOC
out vec3 frag_normal;
#endif

void main()
{
    mat4 model = M * inst_m;
    vec4 world = model * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
#ifdef NORMAL_LOC
    frag_normal = normalize(mat3(model) * normal);
#endif
#ifdef COLOR_0_LOC
    color_multiplier = color_0;
#endif
}
