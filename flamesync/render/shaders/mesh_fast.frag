#version 330 core
// A lean shader for previews, used in place of pyrender's physically based mesh.frag (which
// costs most of a frame on a software rasteriser). It reads the uniforms pyrender already sets:
// vertex colour as albedo, wrapped diffuse (a cheap stand-in for light scattering under skin),
// Blinn-Phong highlights whose size follows the material's roughness, and a Schlick-weighted
// rim. Output is gamma encoded like pyrender's.

struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
};

struct Material {
    vec3 emissive_factor;
    vec4 base_color_factor;
    float metallic_factor;
    float roughness_factor;
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform vec3 ambient_light;
uniform vec3 cam_pos;

in vec3 frag_position;
#ifdef NORMAL_LOC
in vec3 frag_normal;
#endif
#ifdef COLOR_0_LOC
in vec4 color_multiplier;
#endif

out vec4 frag_color;

const float WRAP = 0.25;

void main()
{
    vec4 albedo = material.base_color_factor;
#ifdef COLOR_0_LOC
    albedo *= color_multiplier;
#endif
#ifdef NORMAL_LOC
    vec3 n = normalize(frag_normal);
#else
    vec3 n = normalize(cross(dFdx(frag_position), dFdy(frag_position)));
#endif
    vec3 v = normalize(cam_pos - frag_position);
    float rough = clamp(material.roughness_factor, 0.04, 1.0);
    float shininess = max(2.0 / (rough * rough) - 2.0, 1.0);
    float spec_strength = 0.04 + 0.5 * (1.0 - rough) * (1.0 - rough);
    float fresnel = pow(1.0 - max(dot(n, v), 0.0), 5.0) * (1.0 - rough);  // rough surfaces: no sheen

    vec3 color = ambient_light * albedo.rgb;
    for (int i = 0; i < n_directional_lights; i++) {
        vec3 l = -directional_lights[i].direction;
        vec3 radiance = directional_lights[i].color * directional_lights[i].intensity;
        float ndl = dot(n, l);
        float diffuse = max((ndl + WRAP) / (1.0 + WRAP), 0.0) / 3.14159;
        vec3 h = normalize(l + v);
        float spec = (ndl > 0.0) ? pow(max(dot(n, h), 0.0), shininess) * (shininess + 8.0) / 25.13 : 0.0;
        float f = spec_strength + (1.0 - spec_strength) * fresnel;
        color += radiance * (albedo.rgb * diffuse + vec3(f * spec * 0.35));
    }
    color += material.emissive_factor;
    frag_color = vec4(pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2)), albedo.a);
}
